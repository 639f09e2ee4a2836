package kubetest

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Issuer configures one `jwt` authenticator of kube-apiserver's structured
// authentication configuration (apiserver.config.k8s.io/v1
// AuthenticationConfiguration). Each issuer URL may appear only once:
// kube-apiserver refuses two authenticators with the same issuer URL, so
// accept several token kinds of one provider with several Audiences instead.
type Issuer struct {
	// URL must be https and equal the tokens' "iss" claim and the "issuer"
	// of the discovery document at URL/.well-known/openid-configuration.
	URL string
	// DiscoveryURL optionally overrides where discovery is fetched from.
	DiscoveryURL string
	// CAPEM is the PEM of the CA certificates that verify the issuer's TLS
	// certificate (it becomes issuer.certificateAuthority, which takes PEM
	// content, not a path). Empty: the system roots.
	CAPEM []byte
	// Audiences the token's "aud" must match (at least one). Required.
	// With more than one, audienceMatchPolicy MatchAny is set.
	Audiences []string

	// Username maps the user name. Zero value: claim "sub" with no prefix.
	// A claim of "email" makes kube-apiserver also require that the
	// email_verified claim, when present, be true.
	Username ClaimMapping
	// Groups maps the groups (a string or string-array claim). Optional.
	Groups ClaimMapping
	// UID maps the user's UID (Prefix is not allowed). Optional.
	UID ClaimMapping
	// Extra maps extra user attributes with CEL expressions, e.g.
	// {Key: "devicelogin.test/token-kind", ValueExpression: `has(claims.kind) ? claims.kind : "id"`}.
	Extra []ExtraMapping
	// ClaimValidationRules are extra checks on the claims.
	ClaimValidationRules []ClaimValidationRule
}

// ClaimMapping is a claim plus prefix, or a CEL expression on `claims`.
// When Claim is set the prefix is always sent (kube-apiserver requires it
// to be present, possibly empty).
type ClaimMapping struct {
	Claim      string
	Prefix     string
	Expression string
}

// ExtraMapping maps one extra attribute. Key must be a lowercase
// domain-prefixed path ("example.org/foo"); ValueExpression is CEL producing
// a string or a list of strings ("" or [] means absent).
type ExtraMapping struct {
	Key             string `json:"key"`
	ValueExpression string `json:"valueExpression"`
}

// ClaimValidationRule is either Claim+RequiredValue or a CEL Expression
// (which must yield true) with an optional Message.
type ClaimValidationRule struct {
	Claim         string `json:"claim,omitempty"`
	RequiredValue string `json:"requiredValue,omitempty"`
	Expression    string `json:"expression,omitempty"`
	Message       string `json:"message,omitempty"`
}

// The wire form of apiserver.config.k8s.io/v1 AuthenticationConfiguration
// (k8s.io/apiserver/pkg/apis/apiserver/v1), only the parts used here.
type authenticationConfiguration struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	JWT        []jwtAuthenticator `json:"jwt"`
}

type jwtAuthenticator struct {
	Issuer               jwtIssuer             `json:"issuer"`
	ClaimValidationRules []ClaimValidationRule `json:"claimValidationRules,omitempty"`
	ClaimMappings        claimMappings         `json:"claimMappings"`
}

type jwtIssuer struct {
	URL                  string   `json:"url"`
	DiscoveryURL         string   `json:"discoveryURL,omitempty"`
	CertificateAuthority string   `json:"certificateAuthority,omitempty"`
	Audiences            []string `json:"audiences"`
	AudienceMatchPolicy  string   `json:"audienceMatchPolicy,omitempty"`
}

type claimMappings struct {
	Username prefixedClaimOrExpression  `json:"username"`
	Groups   *prefixedClaimOrExpression `json:"groups,omitempty"`
	UID      *claimOrExpression         `json:"uid,omitempty"`
	Extra    []ExtraMapping             `json:"extra,omitempty"`
}

type prefixedClaimOrExpression struct {
	Claim      string  `json:"claim,omitempty"`
	Prefix     *string `json:"prefix,omitempty"`
	Expression string  `json:"expression,omitempty"`
}

type claimOrExpression struct {
	Claim      string `json:"claim,omitempty"`
	Expression string `json:"expression,omitempty"`
}

// AuthenticationConfig renders the AuthenticationConfiguration document that
// Start hands to kube-apiserver's --authentication-config for these issuers
// (JSON, which kube-apiserver reads like YAML).
func AuthenticationConfig(issuers []Issuer) ([]byte, error) {
	doc := authenticationConfiguration{
		APIVersion: "apiserver.config.k8s.io/v1",
		Kind:       "AuthenticationConfiguration",
		JWT:        []jwtAuthenticator{},
	}
	seen := map[string]bool{}
	for i, is := range issuers {
		if is.URL == "" {
			return nil, fmt.Errorf("issuer %d: URL is empty", i)
		}
		if seen[is.URL] {
			return nil, fmt.Errorf("issuer %q appears twice: kube-apiserver refuses that; use one Issuer with several Audiences", is.URL)
		}
		seen[is.URL] = true
		if len(is.Audiences) == 0 {
			return nil, fmt.Errorf("issuer %q: Audiences is empty", is.URL)
		}
		a := jwtAuthenticator{
			Issuer: jwtIssuer{
				URL:                  is.URL,
				DiscoveryURL:         is.DiscoveryURL,
				CertificateAuthority: string(is.CAPEM),
				Audiences:            is.Audiences,
			},
			ClaimValidationRules: is.ClaimValidationRules,
		}
		if len(is.Audiences) > 1 {
			a.Issuer.AudienceMatchPolicy = "MatchAny"
		}
		user := is.Username
		if user.Claim == "" && user.Expression == "" {
			user.Claim = "sub"
		}
		u, err := prefixed(user)
		if err != nil {
			return nil, fmt.Errorf("issuer %q: username: %w", is.URL, err)
		}
		a.ClaimMappings.Username = *u
		if is.Groups != (ClaimMapping{}) {
			g, err := prefixed(is.Groups)
			if err != nil {
				return nil, fmt.Errorf("issuer %q: groups: %w", is.URL, err)
			}
			a.ClaimMappings.Groups = g
		}
		if is.UID != (ClaimMapping{}) {
			if is.UID.Prefix != "" {
				return nil, fmt.Errorf("issuer %q: uid takes no prefix", is.URL)
			}
			a.ClaimMappings.UID = &claimOrExpression{Claim: is.UID.Claim, Expression: is.UID.Expression}
		}
		a.ClaimMappings.Extra = is.Extra
		doc.JWT = append(doc.JWT, a)
	}
	return json.MarshalIndent(doc, "", "  ")
}

func prefixed(m ClaimMapping) (*prefixedClaimOrExpression, error) {
	switch {
	case m.Claim != "" && m.Expression != "":
		return nil, errors.New("claim and expression are mutually exclusive")
	case m.Expression != "" && m.Prefix != "":
		return nil, errors.New("a prefix goes only with a claim")
	case m.Claim != "":
		p := m.Prefix
		return &prefixedClaimOrExpression{Claim: m.Claim, Prefix: &p}, nil
	default:
		return &prefixedClaimOrExpression{Expression: m.Expression}, nil
	}
}
