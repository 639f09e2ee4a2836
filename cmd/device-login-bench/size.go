package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// sizeReport is what makes up the plugin binary.
type sizeReport struct {
	// Stripped is the size of the binary under test, built like `make build`.
	Stripped int64 `json:"stripped_bytes"`
	// Sections are the ELF sections stored in that file, largest first.
	Sections []namedSize `json:"sections"`
	// Modules are the modules `go version -m` lists.
	Modules []string `json:"modules"`
	// Packages and ByModule attribute the symbols that occupy the file
	// (code, read-only data, initialised data; not .bss) of an unstripped
	// build, as `go tool nm -size` reports them.
	Packages []namedSize `json:"packages"`
	ByModule []namedSize `json:"by_module"`
	// Unattributed is what nm names no package for (the function table,
	// type links, the build info).
	Unattributed int64 `json:"unattributed_bytes"`
}

type namedSize struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// measureSize inspects the stripped binary and an unstripped build of the
// same package (symbols is its path).
func measureSize(ctx context.Context, stripped, symbols string) (*sizeReport, error) {
	st, err := os.Stat(stripped)
	if err != nil {
		return nil, err
	}
	r := &sizeReport{Stripped: st.Size()}
	f, err := elf.Open(stripped)
	if err != nil {
		return nil, err
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOBITS && s.Size > 0 && s.Name != "" {
			r.Sections = append(r.Sections, namedSize{s.Name, int64(s.Size)})
		}
	}
	f.Close()
	sortSizes(r.Sections)

	out, err := exec.CommandContext(ctx, "go", "version", "-m", stripped).Output()
	if err != nil {
		return nil, fmt.Errorf("go version -m: %v", err)
	}
	var mainModule string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "mod" {
			mainModule = f[1]
		}
		if len(f) >= 3 && f[0] == "dep" {
			r.Modules = append(r.Modules, f[1]+" "+f[2])
		}
	}

	// Symbols that take room in the file: those inside sections with bits.
	sf, err := elf.Open(symbols)
	if err != nil {
		return nil, err
	}
	type span struct{ lo, hi uint64 }
	var stored []span
	for _, s := range sf.Sections {
		if s.Type != elf.SHT_NOBITS && s.Flags&elf.SHF_ALLOC != 0 {
			stored = append(stored, span{s.Addr, s.Addr + s.Size})
		}
	}
	sf.Close()
	inFile := func(addr uint64) bool {
		for _, s := range stored {
			if addr >= s.lo && addr < s.hi {
				return true
			}
		}
		return false
	}
	nm, err := exec.CommandContext(ctx, "go", "tool", "nm", "-size", "-sort", "size", symbols).Output()
	if err != nil {
		return nil, fmt.Errorf("go tool nm: %v", err)
	}
	byPkg := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(nm))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		addr, err1 := strconv.ParseUint(f[0], 16, 64)
		size, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || size == 0 || !inFile(addr) {
			continue
		}
		name := strings.Join(f[3:], " ")
		pkg := symbolPackage(name)
		if pkg == "" {
			r.Unattributed += size
			continue
		}
		byPkg[pkg] += size
	}
	byMod := map[string]int64{}
	for pkg, n := range byPkg {
		r.Packages = append(r.Packages, namedSize{pkg, n})
		byMod[packageModule(pkg, mainModule, r.Modules)] += n
	}
	for m, n := range byMod {
		r.ByModule = append(r.ByModule, namedSize{m, n})
	}
	sortSizes(r.Packages)
	sortSizes(r.ByModule)
	return r, nil
}

func sortSizes(s []namedSize) {
	slices.SortFunc(s, func(a, b namedSize) int {
		if a.Bytes != b.Bytes {
			return int(b.Bytes - a.Bytes)
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// symbolPackage is the import path of the package a Go symbol belongs to,
// or "" for the linker's own tables.
func symbolPackage(name string) string {
	for _, prefix := range []string{"type:.eq.", "type:.hash.", "type:.namedata.", "type:", "go:itab.", "go:info.", "go:cuinfo."} {
		if strings.HasPrefix(name, prefix) {
			name = strings.TrimPrefix(name, prefix)
			break
		}
	}
	if strings.HasPrefix(name, "go:") || strings.HasPrefix(name, "runtime.pclntab") || strings.HasPrefix(name, "runtime.findfunctab") {
		return ""
	}
	name = strings.TrimLeft(name, "*[]0123456789")
	head := name
	if i := strings.IndexAny(head, "([,"); i >= 0 {
		head = head[:i]
	}
	slash := strings.LastIndex(head, "/")
	dot := strings.Index(head[slash+1:], ".")
	if dot < 0 {
		return ""
	}
	return head[:slash+1+dot]
}

// packageModule names the module a package comes from: a dependency, the
// main module, or the standard library.
func packageModule(pkg, mainModule string, deps []string) string {
	best := ""
	for _, d := range append([]string{mainModule}, deps...) {
		path, _, _ := strings.Cut(d, " ")
		if path != "" && (pkg == path || strings.HasPrefix(pkg, path+"/")) && len(path) > len(best) {
			best = path
		}
	}
	if best != "" {
		return best
	}
	first, _, _ := strings.Cut(pkg, "/")
	if !strings.Contains(first, ".") || first == "vendor" {
		return "std"
	}
	return pkg
}
