/**
 * Node's codes for a server certificate it refused (OpenSSL's verify errors, and Node's own
 * host-name check), shared by the Kafka and PostgreSQL error classifications: a certificate
 * problem is never cured by waiting, and each says what to fix.
 */

/** The chain does not lead to a CA the client trusts. */
export const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED', 'INVALID_CA', 'CERT_CHAIN_TOO_LONG', 'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
]);

/** Outside its validity period. */
export const EXPIRED_CERTIFICATE = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** Valid, but not for the host name (or IP address) the client connected to. */
export const HOST_MISMATCH = 'ERR_TLS_CERT_ALTNAME_INVALID';
