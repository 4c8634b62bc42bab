// Command wasm-image builds stoa-guard's Istio Wasm OCI image from filter.wasm without Docker
// (compat variant: one tar+gzip layer holding plugin.wasm; see package wasmimage), writes it
// as an OCI image layout, prints the manifest digest, and checks or updates the digest pinned
// in istio/wasmplugin.yaml. The build is reproducible: the digest depends only on the module.
//
//	wasm-image build [-wasm filter.wasm] [-out out/oci] [-tag latest] [-check FILE | -update FILE [-toolchain goX.Y.Z]]
//	wasm-image push  [-wasm filter.wasm] [-update FILE [-toolchain goX.Y.Z]] REF
//	wasm-image digest [-wasm filter.wasm]
//
// -toolchain records, next to the pin, the Go release that compiled the module (`go env
// GOVERSION` of the build): another Go release compiles other bytes, hence another digest.
// The Makefile's image, image-update and push targets are the usual way in.
//
// stdout carries only the digest ("sha256:<hex>") or, for push, the pinned reference.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/stoa-platform/stoa-guard/e2e/wasmimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wasm-image:", err)
		os.Exit(1)
	}
}

func usage() error {
	return errors.New("usage: wasm-image build|push|digest [flags] (see -h of each)")
}

func run(args []string) error {
	if len(args) == 0 {
		return usage()
	}
	fs := flag.NewFlagSet("wasm-image "+args[0], flag.ContinueOnError)
	wasmPath := fs.String("wasm", "filter.wasm", "the Wasm module")
	out := fs.String("out", "out/oci", "build: OCI image layout directory to (re)write")
	tag := fs.String("tag", "latest", "build: ref.name annotation in the layout's index")
	check := fs.String("check", "", "build: fail unless this WasmPlugin manifest pins the digest")
	update := fs.String("update", "", "build/push: rewrite this WasmPlugin manifest to pin the digest")
	toolchain := fs.String("toolchain", "", "with -update: record this Go version (go env GOVERSION) as the one that compiled the module")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *toolchain != "" && *update == "" {
		return errors.New("-toolchain needs -update")
	}
	wasm, err := os.ReadFile(*wasmPath)
	if err != nil {
		return err
	}
	img, err := wasmimage.Build(wasm)
	if err != nil {
		return fmt.Errorf("%s: %w", *wasmPath, err)
	}
	if err := wasmimage.Verify(img, wasm); err != nil {
		return fmt.Errorf("built image fails verification: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	switch args[0] {
	case "digest":
		if fs.NArg() != 0 {
			return usage()
		}
		fmt.Println(digest)
		return nil
	case "build":
		if fs.NArg() != 0 || (*check != "" && *update != "") {
			return usage()
		}
		if _, err := wasmimage.WriteLayout(*out, img, *tag); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote OCI layout %s (Istio Wasm image, compat variant)\n", *out)
		fmt.Println(digest)
		if *check != "" {
			y, err := os.ReadFile(*check)
			if err != nil {
				return err
			}
			if err := wasmimage.Check(y, digest); err != nil {
				return fmt.Errorf("%s: %w", *check, err)
			}
		}
		return updateFile(*update, digest, "", *toolchain)
	case "push":
		if fs.NArg() != 1 {
			return usage()
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		defer stop()
		ref, err := wasmimage.Push(ctx, fs.Arg(0), img)
		if err != nil {
			return err
		}
		fmt.Println(ref.String())
		return updateFile(*update, digest, ref.Context().Name(), *toolchain)
	}
	return usage()
}

func updateFile(path string, digest v1.Hash, repo, toolchain string) error {
	if path == "" {
		return nil
	}
	y, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	ny, err := wasmimage.Update(y, digest, repo)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if toolchain != "" {
		if ny, err = wasmimage.UpdateToolchain(ny, toolchain); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, ny, fi.Mode().Perm()); err != nil {
		return err
	}
	if toolchain != "" {
		fmt.Fprintf(os.Stderr, "%s now pins %s (module compiled by %s)\n", path, digest, toolchain)
	} else {
		fmt.Fprintf(os.Stderr, "%s now pins %s\n", path, digest)
	}
	return nil
}
