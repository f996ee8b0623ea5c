// Command kstatus prints the kstatus of Kubernetes objects exactly as
// sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute (the library Flux and kpt
// use) computes it. hack/build-binaries.sh builds it against the cli-utils
// version in hack/versions.env.
//
// Input on stdin: one JSON object, a JSON array of objects, or a list object
// ({"kind": "List", "items": [...]}, as `kubectl get -o json` prints).
// Output: one JSON line per object, in input order:
//
//	{"name": "...", "namespace": "...", "status": "Current", "message": "..."}
//
// Bad input (not JSON, an item that is not an object, an object without
// apiVersion or kind, a field of the wrong type) exits 1 with one line on stderr.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type line struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if len(os.Args) > 1 {
		fail(errors.New("no arguments are taken; pipe JSON objects to stdin"))
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(fmt.Errorf("reading stdin: %w", err))
	}
	objects, err := parse(data)
	if err != nil {
		fail(err)
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for i, obj := range objects {
		u := &unstructured.Unstructured{Object: obj}
		res, err := status.Compute(u)
		if err != nil {
			fail(fmt.Errorf("item %d (%s): %w", i, describe(u), err))
		}
		l := line{Name: u.GetName(), Namespace: u.GetNamespace(), Status: string(res.Status), Message: res.Message}
		if err := enc.Encode(l); err != nil {
			fail(fmt.Errorf("writing stdout: %w", err))
		}
	}
	if err := out.Flush(); err != nil {
		fail(fmt.Errorf("writing stdout: %w", err))
	}
}

// parse turns stdin into the objects to compute. The apimachinery decoder keeps
// integers as int64, as the API machinery itself does, so metadata.generation
// and status.observedGeneration are read the way status.Compute expects.
func parse(data []byte) ([]map[string]interface{}, error) {
	if strings.TrimSpace(string(data)) == "" {
		return nil, errors.New("no input on stdin; expected a JSON object, a JSON array or a List")
	}
	var top interface{}
	if err := utiljson.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("stdin is not valid JSON: %w", err)
	}
	var items []interface{}
	switch v := top.(type) {
	case []interface{}:
		items = v
	case map[string]interface{}:
		if list, ok := v["items"]; ok {
			if items, ok = list.([]interface{}); !ok {
				return nil, fmt.Errorf("items is a %s, not an array", kindOf(list))
			}
		} else {
			items = []interface{}{v}
		}
	default:
		return nil, fmt.Errorf("stdin holds a JSON %s; expected an object, an array or a List", kindOf(top))
	}
	objects := make([]map[string]interface{}, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]interface{})
		if !ok {
			return nil, fmt.Errorf("item %d is a JSON %s, not an object", i, kindOf(item))
		}
		for _, field := range []string{"apiVersion", "kind"} {
			if s, _ := obj[field].(string); s == "" {
				return nil, fmt.Errorf("item %d has no %s", i, field)
			}
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

func describe(u *unstructured.Unstructured) string {
	name := u.GetName()
	if ns := u.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return u.GetKind() + " " + name
}

func kindOf(v interface{}) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []interface{}:
		return "array"
	case map[string]interface{}:
		return "object"
	default:
		return "number"
	}
}

// fail prints one line, whatever the error holds, and exits 1.
func fail(err error) {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintf(os.Stderr, "kstatus: error: %s\n", msg)
	os.Exit(1)
}
