package setup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/devicelogin/kubectl-device-login/cache"
)

// The files setup edits: written through their symbolic links, with a
// snapshot to put them back when an edit does not read back as meant.

// editFile edits the exec block of user in the kubeconfig at path. A
// symbolic link is followed, as kubectl does, so that the file it points
// at is edited and the link stays; the file keeps its mode.
func editFile(path, user string, e execEdit) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	st, err := os.Stat(target)
	if err != nil {
		return err
	}
	data, err := cache.ReadRegularFile(target, maxKubeconfig)
	if err != nil {
		return err
	}
	edited, err := editKubeconfig(data, user, e)
	if err != nil {
		if errors.Is(err, errNoUser) {
			return err
		}
		return fmt.Errorf("%s: %v", target, err)
	}
	return cache.WriteFileAtomic(target, edited, st.Mode().Perm())
}

// maxKubeconfig is the largest kubeconfig setup edits.
const maxKubeconfig = 16 << 20

// saved holds kubeconfig files as they were, to put back when a step
// fails: the contents of those that existed, nil for those that did not.
type saved map[string][]byte

func snapshot(paths []string) saved {
	s := saved{}
	for _, p := range paths {
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			// Only a path that is not there at all (not even as a
			// dangling link) is removed again.
			if _, lerr := os.Lstat(p); errors.Is(lerr, os.ErrNotExist) {
				s[p] = nil
			}
			continue
		}
		if data, err := cache.ReadRegularFile(target, maxKubeconfig); err == nil {
			s[target] = data
		}
	}
	return s
}

// restore puts every file back as it was.
func (s saved) restore() error {
	var errs []error
	for path, data := range s {
		if data == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		st, err := os.Stat(path)
		mode := os.FileMode(0o600)
		if err == nil {
			mode = st.Mode().Perm()
		}
		if err := cache.WriteFileAtomic(path, data, mode); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
