// Package api holds the OpenAPI 3.1 description of million's public HTTP API.
//
// The document, openapi.yaml in this directory, is the contract between the
// server and its clients: every route of the public listener, its parameters,
// request and response bodies, status codes and headers. It is embedded in the
// binary as [Spec], served by the server at GET /openapi.yaml, and used by
// tests to check that the router and the document agree (see [Operations]).
//
// Edit openapi.yaml, not this file, when the API changes.
package api

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is the OpenAPI 3.1 document of the public HTTP API, in YAML, exactly as
// found in openapi.yaml. Serve it with Content-Type application/yaml. Do not
// modify the slice.
//
//go:embed openapi.yaml
var Spec []byte

// Operation is one HTTP method on one path of the API, such as
// {Method: "GET", Path: "/v1/products/{id}"}.
type Operation struct {
	// Method is the HTTP method in upper case, e.g. "GET" or "PATCH".
	Method string
	// Path is the path template as written in the document, with path
	// parameters in braces, e.g. "/v1/products/{id}".
	Path string
}

// String returns the operation as "METHOD /path".
func (o Operation) String() string { return o.Method + " " + o.Path }

// httpMethods are the keys of an OpenAPI path item that name operations; the
// other keys (summary, description, parameters, servers, $ref) do not.
var httpMethods = map[string]bool{
	"get": true, "put": true, "post": true, "delete": true,
	"options": true, "head": true, "patch": true, "trace": true,
}

// Operations parses [Spec] and returns every operation it declares, sorted by
// path and then by method. It returns an error if Spec is not valid YAML or
// has no paths.
func Operations() ([]Operation, error) {
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(Spec, &doc); err != nil {
		return nil, fmt.Errorf("api: parse openapi.yaml: %w", err)
	}
	if len(doc.Paths) == 0 {
		return nil, errors.New("api: openapi.yaml declares no paths")
	}
	var ops []Operation
	for path, item := range doc.Paths {
		for key := range item {
			if httpMethods[key] {
				ops = append(ops, Operation{Method: strings.ToUpper(key), Path: path})
			}
		}
	}
	slices.SortFunc(ops, func(a, b Operation) int {
		return cmp.Or(strings.Compare(a.Path, b.Path), strings.Compare(a.Method, b.Method))
	})
	return ops, nil
}
