-- +goose Up
-- search_words is an unstemmed twin of search_products, keyed by the same
-- rowid. Its vocabulary completes the prefix a user is typing into whole
-- words: the stemmed index holds "hike" for "Hiking", so the prefix "hikin"
-- is a prefix of no stemmed term, but it is one of the unstemmed "hiking".
-- Only the vocabulary is needed, so the twin keeps no content and no
-- positions.
CREATE VIRTUAL TABLE search_words USING fts5 (
    name,
    description,
    tokenize = 'unicode61 remove_diacritics 2',
    content = '',
    contentless_delete = 1,
    detail = none
);
INSERT INTO search_words (rowid, name, description)
    SELECT rowid, name, description FROM search_products;
CREATE VIRTUAL TABLE search_words_vocab USING fts5vocab (search_words, row);

-- +goose Down
DROP TABLE search_words_vocab;
DROP TABLE search_words;
