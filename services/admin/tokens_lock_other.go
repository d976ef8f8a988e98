//go:build !unix

package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockFile takes the lock by creating path exclusively, waiting up to
// ten seconds for another holder to remove it. Without flock a killed
// holder leaves the file behind: the error says to remove it.
func lockFile(path string) (func(), error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s is held by another process (remove it if none runs)", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
