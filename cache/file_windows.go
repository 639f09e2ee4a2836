//go:build windows

package cache

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// On Windows mode bits mean nothing: files and the cache directory are
// restricted to the current user with a protected access control list
// (no inherited entries), and reading checks that no one else is granted
// access, as the mode is checked on Unix. SYSTEM and the Administrators
// group, which can take any file anyway, are tolerated.

// readRegular opens path for reading with FILE_SHARE_DELETE, so that a
// reader never blocks the refresher's rename or logout's delete (os.Open
// does not share deletion), refuses what is not a regular file, and, when
// private, a file others may read.
func readRegular(path string, limit int64, private bool) ([]byte, error) {
	f, err := openShared(path, private)
	switch {
	case errors.Is(err, windows.ERROR_FILE_NOT_FOUND), errors.Is(err, windows.ERROR_PATH_NOT_FOUND):
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	case err != nil:
		return nil, &BadFileError{path, "cannot open it: " + err.Error()}
	}
	defer f.Close()
	h := windows.Handle(f.Fd())
	st, err := f.Stat()
	if err != nil {
		return nil, &BadFileError{path, "cannot inspect it: " + describe(err)}
	}
	if !st.Mode().IsRegular() {
		return nil, &BadFileError{path, "it is not a regular file (a link, a device or a directory); delete it"}
	}
	if private {
		if reason := othersMayAccess(h); reason != "" {
			return nil, &BadFileError{path, reason}
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &BadFileError{path, "cannot read it: " + describe(err)}
	}
	return data, nil
}

// openShared opens path for reading, sharing reading, writing and
// deletion; when private, without following a reparse point (a link).
func openShared(path string, private bool) (*os.File, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	flags := uint32(windows.FILE_ATTRIBUTE_NORMAL)
	if private {
		flags |= windows.FILE_FLAG_OPEN_REPARSE_POINT
	}
	h, err := windows.CreateFile(p, windows.GENERIC_READ,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, flags, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(h), path), nil
}

// currentUser is the SID of the user this process runs as.
func currentUser() (*windows.SID, error) {
	u, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, err
	}
	return u.User.Sid, nil
}

// ownerOnly is a protected access control list that grants the current
// user everything and no one else anything; inherit makes directories
// pass it on to what is created in them.
func ownerOnly(inherit bool) (*windows.ACL, error) {
	sid, err := currentUser()
	if err != nil {
		return nil, err
	}
	inheritance := uint32(windows.NO_INHERITANCE)
	if inherit {
		inheritance = windows.SUB_CONTAINERS_AND_OBJECTS_INHERIT
	}
	return windows.ACLFromEntries([]windows.EXPLICIT_ACCESS{{
		AccessPermissions: windows.GENERIC_ALL,
		AccessMode:        windows.GRANT_ACCESS,
		Inheritance:       inheritance,
		Trustee: windows.TRUSTEE{
			TrusteeForm:  windows.TRUSTEE_IS_SID,
			TrusteeType:  windows.TRUSTEE_IS_USER,
			TrusteeValue: windows.TrusteeValueFromSID(sid),
		},
	}}, nil)
}

const protectedDACL = windows.DACL_SECURITY_INFORMATION | windows.PROTECTED_DACL_SECURITY_INFORMATION

// restrict gives a new file an access control list for this user only.
func restrict(f *os.File) error {
	acl, err := ownerOnly(false)
	if err != nil {
		return err
	}
	return windows.SetSecurityInfo(windows.Handle(f.Fd()), windows.SE_FILE_OBJECT, protectedDACL, nil, nil, acl, nil)
}

// makePrivateDir creates dir (and its parents); a directory it creates
// last, the cache directory itself, gets an access control list for this
// user only, inherited by the files in it.
func makePrivateDir(dir string) error {
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	acl, err := ownerOnly(true)
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, protectedDACL, nil, nil, acl, nil)
}

// othersMayAccess explains why an object whose security descriptor grants
// access to others must not be trusted with tokens, or returns "".
func othersMayAccess(h windows.Handle) string {
	sd, err := windows.GetSecurityInfo(h, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return "cannot read its access control list: " + err.Error()
	}
	return checkSecurity(sd)
}

func checkSecurity(sd *windows.SECURITY_DESCRIPTOR) string {
	me, err := currentUser()
	if err != nil {
		return "cannot tell who you are: " + err.Error()
	}
	tolerated := func(sid *windows.SID) bool {
		return sid.Equals(me) || sid.IsWellKnown(windows.WinLocalSystemSid) || sid.IsWellKnown(windows.WinBuiltinAdministratorsSid)
	}
	owner, _, err := sd.Owner()
	if err != nil || owner == nil || !tolerated(owner) {
		return "it is owned by another user; delete it"
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return "cannot read its access control list: " + err.Error()
	}
	if dacl == nil {
		return "it has no access control list, so everyone may read it; delete it and sign in again"
	}
	for i := uint16(0); i < dacl.AceCount; i++ {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, uint32(i), &ace); err != nil {
			return "cannot read its access control list: " + err.Error()
		}
		if ace.Header.AceType != windows.ACCESS_ALLOWED_ACE_TYPE {
			continue
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		if !tolerated(sid) {
			return fmt.Sprintf("its access control list lets %s read or change it, so its tokens may be exposed; delete it and sign in again", sid.String())
		}
	}
	return ""
}

// checkDirInfo checks that dir, of which os.Lstat said st, is safe for
// sessions: a real directory (not a link) that no one but this user (and
// SYSTEM, Administrators) may use.
func checkDirInfo(dir string, st fs.FileInfo) error {
	if st.Mode()&fs.ModeSymlink != 0 || st.Mode()&fs.ModeIrregular != 0 {
		return fmt.Errorf("the cache directory %s is a link; point --cache-dir at a real directory", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("the cache directory %s is not a directory; move it away or choose another with --cache-dir", dir)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION|windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("cannot read the access control list of the cache directory %s: %v", dir, err)
	}
	if reason := checkSecurity(sd); reason != "" {
		return fmt.Errorf("the cache directory %s is not private (%s); run: icacls %q /inheritance:r /grant:r \"%%USERNAME%%:(OI)(CI)F\"", dir, reason, dir)
	}
	return nil
}

func syncDir(string) {}
