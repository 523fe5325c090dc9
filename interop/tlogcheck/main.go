// Command tlogcheck verifies a running Candor log with Go's golang.org/x/mod/sumdb/tlog and
// sumdb/note: code nobody on the Candor team wrote, so agreement means interoperability rather
// than our code agreeing with itself.
//
// Usage: tlogcheck BASE_URL VKEY
//
// BASE_URL is the log's tlog-tiles prefix (http://HOST/log). It checks the checkpoint's signature,
// that Go's tile reader accepts every tile it needs (it authenticates each tile against the
// signed root), every entry's inclusion with proofs Go computes from the tiles and with the
// receipts Candor serves, and Candor's consistency proofs. It prints "N passed, 0 failed" and
// exits 1 at the first failure.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base string
var passed int

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL: "+format+"\n", args...)
	fmt.Printf("%d passed, 1 failed\n", passed)
	os.Exit(1)
}

func pass(format string, args ...interface{}) {
	passed++
	fmt.Printf("ok: "+format+"\n", args...)
}

func get(path string) []byte {
	resp, err := http.Get(base + "/" + path)
	if err != nil {
		fail("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		fail("GET %s: status %d, %v", path, resp.StatusCode, err)
	}
	return body
}

// tiles reads C2SP tlog-tiles paths: Go's own tile paths carry the height (tile/8/L/N), C2SP's
// do not (tile/L/N), and Go calls entry bundles "data" where C2SP says "entries".
type tiles struct{}

func (tiles) Height() int { return 8 }

func (tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		out[i] = get("tile/" + strings.TrimPrefix(t.Path(), "tile/8/"))
	}
	return out, nil
}

func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func entries(size int64) [][]byte {
	var all [][]byte
	for n := int64(0); n*256 < size; n++ {
		w := size - n*256
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: n, W: int(w)}
		bundle := get("tile/entries/" + strings.TrimPrefix(t.Path(), "tile/8/data/"))
		for len(bundle) > 0 {
			l := int(binary.BigEndian.Uint16(bundle))
			all = append(all, bundle[2:2+l])
			bundle = bundle[2+l:]
		}
	}
	if int64(len(all)) != size {
		fail("entry bundles hold %d entries, the checkpoint says %d", len(all), size)
	}
	return all
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck BASE_URL VKEY")
		os.Exit(2)
	}
	base = strings.TrimSuffix(os.Args[1], "/")
	verifier, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fail("vkey: %v", err)
	}

	msg := get("checkpoint")
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("checkpoint signature: %v", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 || lines[0] != verifier.Name() {
		fail("checkpoint body %q", n.Text)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	rootBytes, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(rootBytes) != 32 {
		fail("checkpoint root: %v", err)
	}
	var tree tlog.Tree
	tree.N = size
	copy(tree.Hash[:], rootBytes)
	pass("checkpoint signed by %s, size %d", verifier.Name(), size)

	reader := tlog.TileHashReader(tree, tiles{})
	root, err := tlog.TreeHash(size, reader)
	if err != nil || root != tree.Hash {
		fail("tree hash from tiles: %v", err)
	}
	pass("Go's tile reader authenticates the tiles against the root")

	for i, entry := range entries(size) {
		index := int64(i)
		leaf := tlog.RecordHash(entry)
		proof, err := tlog.ProveRecord(size, index, reader)
		if err != nil {
			fail("prove record %d: %v", index, err)
		}
		if err := tlog.CheckRecord(proof, size, tree.Hash, index, leaf); err != nil {
			fail("entry %d from the bundles is not in the tree: %v", index, err)
		}
		// Candor's own receipt for the same leaf, checked by Go.
		if index%37 == 0 || index == size-1 {
			receipt := get("receipt/" + strconv.FormatInt(index, 10))
			head := bytes.SplitN(receipt, []byte("\n\n"), 2)[0]
			rl := strings.Split(string(head), "\n")
			if rl[0] != "c2sp.org/tlog-proof@v1" || rl[1] != "index "+strconv.FormatInt(index, 10) {
				fail("receipt %d header %q", index, head)
			}
			var rp tlog.RecordProof
			for _, l := range rl[2:] {
				b, err := base64.StdEncoding.DecodeString(l)
				if err != nil || len(b) != 32 {
					fail("receipt %d proof line %q", index, l)
				}
				var h tlog.Hash
				copy(h[:], b)
				rp = append(rp, h)
			}
			if err := tlog.CheckRecord(rp, size, tree.Hash, index, leaf); err != nil {
				fail("Candor's receipt for %d does not verify in Go: %v", index, err)
			}
		}
	}
	pass("all %d entries are included, and Candor's receipts verify", size)

	for _, old := range []int64{1, size / 3, size / 2, size - 1} {
		if old < 1 || old >= size {
			continue
		}
		var body struct{ Proof []string }
		if err := json.Unmarshal(get(fmt.Sprintf("consistency?from=%d&to=%d", old, size)), &body); err != nil {
			fail("consistency %d: %v", old, err)
		}
		var p tlog.TreeProof
		for _, s := range body.Proof {
			b, _ := base64.StdEncoding.DecodeString(s)
			var h tlog.Hash
			copy(h[:], b)
			p = append(p, h)
		}
		oldRoot, err := tlog.TreeHash(old, reader)
		if err != nil {
			fail("tree hash %d: %v", old, err)
		}
		if err := tlog.CheckTree(p, size, tree.Hash, old, oldRoot); err != nil {
			fail("Candor's consistency proof %d -> %d does not verify in Go: %v", old, size, err)
		}
	}
	pass("Candor's consistency proofs verify")
	fmt.Printf("%d passed, 0 failed\n", passed)
}
