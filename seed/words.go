package seed

// category is one seeded category with the vocabulary its products are
// named and described from, so a search for "boot" lands in shoes and a
// search for "skillet" lands in kitchen, as it would in a real shop.
type category struct {
	slug, name string
	nouns      []string // what the product is: the last words of its name
	materials  []string // what it is made of, or what kind it is
	uses       []string // what it is for, completing "for ..."
}

// categories are seeded in this order; a product picks its category by index
// into this list, never by database id, so the choice is the same on every
// database for a given seed.
var categories = []category{
	{"shoes", "Shoes",
		[]string{"Hiking Boot", "Running Shoe", "Sneaker", "Loafer", "Sandal", "Trail Runner", "Ankle Boot", "Slip-On", "Oxford", "Clog", "Chelsea Boot", "Court Shoe"},
		[]string{"Leather", "Suede", "Canvas", "Mesh", "Nubuck", "Rubber", "Knit"},
		[]string{"long days on your feet", "weekend trails", "city walking", "the office", "rainy commutes"}},
	{"outdoor", "Outdoor",
		[]string{"Tent", "Backpack", "Sleeping Bag", "Camp Stove", "Headlamp", "Trekking Pole", "Hammock", "Water Filter", "Rain Jacket", "Cooler", "Camp Chair"},
		[]string{"Nylon", "Ripstop", "Aluminum", "Titanium", "Polyester", "Waxed Canvas"},
		[]string{"backcountry camping", "alpine hikes", "rainy weekends", "family camping trips", "overnight treks"}},
	{"kitchen", "Kitchen",
		[]string{"Chef Knife", "Skillet", "Dutch Oven", "Cutting Board", "Saucepan", "Mixing Bowl", "Kettle", "Spatula", "Colander", "Baking Sheet", "Stockpot", "Pepper Mill"},
		[]string{"Cast Iron", "Stainless Steel", "Bamboo", "Ceramic", "Copper", "Walnut", "Enameled"},
		[]string{"weeknight dinners", "holiday baking", "meal prep", "slow Sunday brunches", "cooking for a crowd"}},
	{"books", "Books",
		[]string{"Cookbook", "Novel", "Field Guide", "Atlas", "Journal", "Anthology", "Biography", "Travel Guide", "Poetry Collection", "Sketchbook", "Mystery"},
		[]string{"Hardcover", "Paperback", "Clothbound", "Illustrated", "Leatherbound", "Spiral-Bound"},
		[]string{"quiet evenings", "long flights", "curious minds", "gift giving", "rainy afternoons"}},
	{"electronics", "Electronics",
		[]string{"Headphones", "Bluetooth Speaker", "Charger", "Power Bank", "Keyboard", "Mouse", "Webcam", "Smartwatch", "Earbuds", "Monitor Stand", "USB Hub"},
		[]string{"Aluminum", "Wireless", "Graphite", "Polycarbonate", "Silicone", "Carbon Fiber"},
		[]string{"video calls", "gaming marathons", "commuting", "the home office", "travel"}},
	{"clothing", "Clothing",
		[]string{"Hoodie", "T-Shirt", "Jacket", "Sweater", "Chinos", "Jeans", "Flannel Shirt", "Vest", "Scarf", "Beanie", "Parka"},
		[]string{"Cotton", "Merino Wool", "Linen", "Denim", "Fleece", "Cashmere", "Corduroy"},
		[]string{"chilly mornings", "everyday wear", "layering", "weekend getaways", "evenings out"}},
	{"home", "Home",
		[]string{"Throw Blanket", "Table Lamp", "Vase", "Wall Clock", "Picture Frame", "Candle", "Rug", "Cushion", "Mirror", "Planter", "Doormat"},
		[]string{"Wool", "Rattan", "Marble", "Glass", "Oak", "Linen", "Jute"},
		[]string{"the living room", "cozy nights in", "a bright entryway", "the bedroom", "housewarming gifts"}},
	{"garden", "Garden",
		[]string{"Garden Hose", "Pruning Shears", "Watering Can", "Raised Bed", "Trowel", "Wheelbarrow", "Bird Feeder", "Rake", "Planter Box", "Seed Tray"},
		[]string{"Galvanized Steel", "Cedar", "Recycled Plastic", "Forged Steel", "Teak", "Terracotta"},
		[]string{"spring planting", "vegetable patches", "balcony gardens", "tidy lawns", "herb growing"}},
	{"toys", "Toys",
		[]string{"Building Set", "Puzzle", "Teddy Bear", "Race Car", "Dollhouse", "Kite", "Train Set", "Board Game", "Yo-Yo", "Marble Run", "Robot Kit"},
		[]string{"Wooden", "Plush", "Recycled", "Felt", "Magnetic", "Cardboard"},
		[]string{"rainy days indoors", "family game night", "young builders", "birthday surprises", "the playroom"}},
	{"sports", "Sports",
		[]string{"Yoga Mat", "Dumbbell", "Tennis Racket", "Basketball", "Jump Rope", "Soccer Ball", "Cycling Helmet", "Kettlebell", "Resistance Band", "Water Bottle"},
		[]string{"Rubber", "Neoprene", "Graphite", "Foam", "Steel", "Cork"},
		[]string{"home workouts", "the gym", "weekend leagues", "morning runs", "training season"}},
	{"beauty", "Beauty",
		[]string{"Face Serum", "Lip Balm", "Hair Brush", "Moisturizer", "Cleanser", "Body Lotion", "Makeup Bag", "Nail Kit", "Shampoo", "Bath Salts"},
		[]string{"Argan Oil", "Shea Butter", "Aloe", "Charcoal", "Rosehip", "Boar Bristle"},
		[]string{"a daily routine", "sensitive skin", "self-care Sundays", "travel", "dry winters"}},
	{"health", "Health",
		[]string{"First Aid Kit", "Massage Gun", "Heating Pad", "Pill Organizer", "Thermometer", "Foam Roller", "Knee Brace", "Sleep Mask", "Posture Corrector"},
		[]string{"Memory Foam", "Silicone", "Neoprene", "Cotton", "Bamboo", "Gel"},
		[]string{"post-workout recovery", "restful sleep", "the medicine cabinet", "long desk days", "peace of mind"}},
	{"office", "Office",
		[]string{"Desk Organizer", "Notebook", "Fountain Pen", "Desk Lamp", "Stapler", "File Cabinet", "Whiteboard", "Planner", "Monitor Riser", "Pencil Case"},
		[]string{"Leather", "Brass", "Walnut", "Steel", "Recycled Paper", "Cork"},
		[]string{"the home office", "focused work", "students", "busy teams", "planning the week"}},
	{"pets", "Pets",
		[]string{"Dog Bed", "Cat Tree", "Leash", "Collar", "Food Bowl", "Chew Toy", "Litter Box", "Pet Carrier", "Scratching Post", "Grooming Brush"},
		[]string{"Nylon", "Sisal", "Plush", "Stainless Steel", "Hemp", "Rubber"},
		[]string{"playful puppies", "indoor cats", "long walks", "vet visits", "nap time"}},
	{"automotive", "Automotive",
		[]string{"Seat Cover", "Floor Mat", "Phone Mount", "Dash Cam", "Tire Inflator", "Car Vacuum", "Jump Starter", "Trunk Organizer", "Wiper Blade"},
		[]string{"Neoprene", "Rubber", "Leather", "Microfiber", "Carbon", "Vinyl"},
		[]string{"road trips", "daily commutes", "winter driving", "family cars", "roadside emergencies"}},
	{"tools", "Tools",
		[]string{"Hammer", "Screwdriver Set", "Cordless Drill", "Wrench", "Tape Measure", "Utility Knife", "Spirit Level", "Socket Set", "Pliers", "Tool Box"},
		[]string{"Chrome Vanadium", "Fiberglass", "Hardened Steel", "Titanium", "Aluminum", "Hickory"},
		[]string{"weekend projects", "the workshop", "home repairs", "professional trades", "flat-pack furniture"}},
	{"music", "Music",
		[]string{"Acoustic Guitar", "Ukulele", "Guitar Strap", "Drum Sticks", "Harmonica", "Microphone", "Metronome", "Capo", "Music Stand", "Violin"},
		[]string{"Maple", "Rosewood", "Mahogany", "Spruce", "Brass", "Leather"},
		[]string{"practice sessions", "live gigs", "beginners", "home recording", "campfire songs"}},
	{"jewelry", "Jewelry",
		[]string{"Necklace", "Ring", "Bracelet", "Earrings", "Pendant", "Anklet", "Watch", "Cufflinks", "Brooch", "Charm"},
		[]string{"Sterling Silver", "Gold", "Rose Gold", "Pearl", "Titanium", "Turquoise"},
		[]string{"anniversaries", "everyday elegance", "special occasions", "gift giving", "evenings out"}},
	{"baby", "Baby",
		[]string{"Swaddle", "Teether", "Stroller", "High Chair", "Crib Sheet", "Baby Carrier", "Bib", "Rattle", "Play Mat", "Diaper Bag"},
		[]string{"Organic Cotton", "Muslin", "Bamboo", "Silicone", "Merino", "Beech Wood"},
		[]string{"newborns", "busy parents", "nap time", "outings with little ones", "baby showers"}},
	{"furniture", "Furniture",
		[]string{"Armchair", "Bookshelf", "Coffee Table", "Desk", "Bar Stool", "Nightstand", "Sofa", "Dining Chair", "TV Stand", "Bench"},
		[]string{"Oak", "Walnut", "Velvet", "Steel", "Rattan", "Reclaimed Wood"},
		[]string{"small apartments", "the dining room", "reading corners", "open-plan living", "the guest room"}},
}

// adjectives open every product name, so names vary beyond category×noun.
var adjectives = []string{
	"Rugged", "Classic", "Modern", "Lightweight", "Compact", "Premium", "Vintage", "Deluxe",
	"Essential", "Everyday", "Heritage", "Sleek", "Durable", "Ultralight", "Cozy", "Handcrafted",
	"Artisan", "Minimalist", "Portable", "Signature", "Weatherproof", "Ergonomic", "Timeless",
	"Bold", "Urban", "Nordic", "Coastal", "Alpine", "Midnight", "Summit", "Heavy-Duty", "Smart",
	"Soft", "Elegant", "Rustic", "Sturdy", "Luxe", "Performance", "Refined", "Trusty",
}

// features fill the optional second sentence of a description.
var features = []string{
	"reinforced stitching", "a water-resistant finish", "an easy-clean surface", "a slim profile",
	"recyclable packaging", "a comfortable grip", "breathable construction", "a scratch-resistant coating",
	"replaceable parts", "a space-saving design", "sustainably sourced materials", "hand-finished details",
	"a two-tone look", "rounded edges", "a non-slip base", "a generous fit",
}

// qualities fill the praise sentence of a description.
var qualities = []string{
	"durability", "comfort", "clean lines", "value", "craftsmanship", "versatility",
	"quiet confidence", "attention to detail", "light weight", "sturdy build",
}

var firstNames = []string{
	"Ada", "Alan", "Amara", "Ana", "Ben", "Carla", "Chen", "Chloe", "Daniel", "Diego",
	"Elena", "Emma", "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal",
	"Julia", "Kai", "Kenji", "Lara", "Leo", "Lina", "Lucas", "Maya", "Mateo", "Mia",
	"Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Rosa", "Sam", "Sara", "Sofia",
	"Tariq", "Theo", "Uma", "Victor", "Wei", "Yara", "Yusuf", "Zara", "Zoe", "Oscar",
}

var lastNames = []string{
	"Adams", "Alvarez", "Baker", "Brown", "Chen", "Costa", "Davis", "Dubois", "Evans", "Fischer",
	"Garcia", "Green", "Hansen", "Hughes", "Ito", "Jensen", "Johnson", "Kaur", "Kim", "Kowalski",
	"Larsen", "Lee", "Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nakamura", "Nguyen", "Novak",
	"Okafor", "Olsen", "Patel", "Perez", "Popescu", "Quinn", "Rossi", "Santos", "Schmidt", "Silva",
	"Singh", "Smith", "Tanaka", "Taylor", "Walker", "Wang", "Weber", "Williams", "Wilson", "Young",
}
