// Command netstack is the second floor of the cache-hit benchmark: a Go
// program that links what the plugin cannot do without (net/http with its
// TLS stack, golang.org/x/oauth2 and github.com/spf13/pflag), so that their
// package initialisation and binary size are paid, and then does nothing
// with them but print one line. The plugin's cache hit is compared with it.
package main

import (
	"net/http"
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/oauth2"
)

// Referencing one value of each package keeps the linker from dropping
// them; nothing is sent and no flag is parsed.
var linked = []any{http.DefaultTransport, oauth2.AuthStyleInParams, pflag.CommandLine}

func main() {
	if len(linked) == 0 {
		os.Exit(1)
	}
	os.Stdout.WriteString("netstack\n")
}
