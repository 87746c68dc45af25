// Why a TLS connection failed, in words: kept apart from tls.ts, which loads node:tls and
// node:crypto, so that every Peer (which may have to explain a failed handshake) does not load them.

// Why a handshake failed, as OpenSSL names it (the `code` of node's error).
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
])

/**
 * Why a TLS connection failed and what to do about it, for the one-line error of a peer that could
 * not be reached; undefined if `error` is no TLS failure.
 */
export function describeTlsFailure(error: Error & {code?: string}): string | undefined {
  // OpenSSL's own text for it is a line of internal locations.
  if (error.code === 'ERR_SSL_WRONG_VERSION_NUMBER') return 'it does not answer in TLS (if it serves plain http, use an http:// URL)'
  const advice = certificateAdvice(error.code)
  return advice ? `${error.message} (${advice})` : undefined
}

function certificateAdvice(code: string | undefined): string | undefined {
  if (code === undefined) return undefined
  if (UNTRUSTED.has(code)) return "its certificate is not signed by an authority trusted here: give the cluster's CA certificate with --ca or DFS_CA"
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'its certificate is not for this host name or address: use the name the certificate was made for'
  if (code === 'CERT_HAS_EXPIRED') return 'its certificate has expired'
  if (code === 'CERT_NOT_YET_VALID') return 'its certificate is not valid yet (check the clocks)'
  return undefined
}
