package index

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// patientKeyVersion prefixes the hashed form so a later change of the
// canonical form can coexist with keys already stored (rebuild, then
// switch).
const patientKeyVersion = "v1"

// PatientKey is how the index holds a patient identifier: HMAC-SHA256
// under the index's secret (<data_dir>/secrets/index-hmac in the embedded
// default) over a canonical form, in lower-case hex. The canonical form
// trims both parts and upper-cases the assigning authority (PID-3.4 is a
// code; the ID itself may be case-sensitive and is kept as written), so
// the admin API, hashing the ID a user searches for the same way, finds
// the messages. An empty ID has no key (""). Without the secret the key
// cannot be reversed or recomputed from a guessed ID; a different secret
// gives different keys, so deleting the data directory unlinks them.
func PatientKey(secret []byte, authority, id string) string {
	id = strings.TrimSpace(id)
	if id == "" {
		return ""
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(patientKeyVersion))
	mac.Write([]byte{0})
	mac.Write([]byte(strings.ToUpper(strings.TrimSpace(authority))))
	mac.Write([]byte{0})
	mac.Write([]byte(id))
	return hex.EncodeToString(mac.Sum(nil))
}
