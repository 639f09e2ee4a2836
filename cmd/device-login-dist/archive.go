package main

import (
	"archive/tar"
	"archive/zip"
	"compress/flate"
	"compress/gzip"
	"io"
	"os"
	"time"
)

// File is one regular file of an archive.
type File struct {
	// Name is the path inside the archive (slash-separated).
	Name string
	// Mode is the permission bits (0o755 for the binary, 0o644 otherwise).
	Mode os.FileMode
	Data []byte
}

// WriteTarGz writes files, in the given order, as a gzip-compressed tar
// archive that depends only on its inputs: USTAR headers with the given
// modification time, owner and group 0 with empty names, no access or
// change times; a gzip header with no file name and a zero time (and
// compress/gzip's fixed "unknown" OS byte).
func WriteTarGz(w io.Writer, files []File, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.Name,
			Mode:     int64(f.Mode.Perm()),
			Size:     int64(len(f.Data)),
			ModTime:  mtime.UTC().Truncate(time.Second),
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// WriteZip writes files, in the given order, as a deflated zip archive
// that depends only on its inputs: each entry carries the given
// modification time (as an MS-DOS time and, because archive/zip always
// adds one when a time is set, an Info-ZIP extended-timestamp field with
// the same instant) and Unix permission bits; no owner, no access or
// creation times, no archive comment.
func WriteZip(w io.Writer, files []File, mtime time.Time) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestCompression)
	})
	for _, f := range files {
		hdr := &zip.FileHeader{
			Name:     f.Name,
			Method:   zip.Deflate,
			Modified: mtime.UTC().Truncate(time.Second),
		}
		hdr.SetMode(f.Mode.Perm())
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		if _, err := fw.Write(f.Data); err != nil {
			return err
		}
	}
	return zw.Close()
}
