package tokenmint

// Thumbprint exposes thumbprint so the RFC test vectors, which are public keys only,
// can be checked against the code KeyID uses.
var Thumbprint = thumbprint
