module github.com/devicelogin/kubectl-device-login

go 1.26.0

require (
	github.com/adrg/xdg v0.5.3 // indirect
	github.com/gofrs/flock v0.13.2 // indirect
	github.com/spf13/pflag v1.1.0 // indirect
	github.com/zitadel/oidc/v3 v3.52.0 // indirect
	golang.org/x/oauth2 v0.38.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/term v0.48.0 // indirect
)
