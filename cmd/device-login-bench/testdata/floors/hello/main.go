// Command hello is the first floor of the cache-hit benchmark: the cost of
// starting and ending any Go program on this machine. It prints one line,
// as the plugin prints one credential.
package main

import "os"

func main() {
	os.Stdout.WriteString("hello\n")
}
