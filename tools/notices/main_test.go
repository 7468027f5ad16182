package main

import (
	"bytes"
	"os"
	"testing"
)

// TestNoticesUpToDate regenerates THIRD_PARTY_NOTICES from the modules the rotatord binary
// links and compares it with the file in the repository: a new or upgraded dependency fails
// here until `go run ./tools/notices > THIRD_PARTY_NOTICES` is run and the result committed.
func TestNoticesUpToDate(t *testing.T) {
	var got bytes.Buffer
	if err := write(&got, "github.com/rotatord/rotatord/cmd/rotatord"); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../THIRD_PARTY_NOTICES")
	if err != nil {
		t.Fatalf("read THIRD_PARTY_NOTICES (create it with `go run ./tools/notices > THIRD_PARTY_NOTICES`): %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Error("THIRD_PARTY_NOTICES is out of date: run `go run ./tools/notices > THIRD_PARTY_NOTICES` and commit it")
	}
	for _, mod := range []string{"github.com/hashicorp/vault/api", "github.com/prometheus/client_golang", "go.uber.org/zap", "github.com/robfig/cron/v3"} {
		if !bytes.Contains(want, []byte("\n"+mod+" v")) {
			t.Errorf("no section for %s", mod)
		}
	}
	if !bytes.Contains(want, []byte("License: MPL-2.0\nSource: ")) {
		t.Error("no MPL-2.0 module says where its source is")
	}
}

func TestIdentify(t *testing.T) {
	for text, want := range map[string]string{
		"Business Source License 1.1\nParameters":                     "BUSL-1.1",
		"Mozilla Public License Version 2.0\n===":                     "MPL-2.0",
		"   Apache License\n   Version 2.0":                           "Apache-2.0",
		"Permission is hereby granted, free of charge, to any person": "MIT",
		// go.yaml.in/yaml/v3: "covered by two different licenses: MIT and Apache", both texts.
		"two licenses\nPermission is hereby granted, free of charge\n   Apache License\n": "MIT AND Apache-2.0",
		"something else": "",
	} {
		if got := identify(text); got != want {
			t.Errorf("identify(%.30q) = %q, want %q", text, got, want)
		}
	}
}
