import {X509Certificate, createPrivateKey} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {createSecureContext} from 'node:tls'

import {readPrivateFile} from './cluster-key.js'
import {DfsError} from './errors.js'

/** A server's certificate chain and private key, as given to https. */
export interface ServerTls {
  cert: Buffer
  key: Buffer
}

/**
 * The certificate and key of `--tls-cert`/`--tls-key`, checked before the server starts, so that a
 * wrong file is one clear line at start rather than a failed handshake at every request: both or
 * neither, a PEM certificate that is valid now, a key only its owner can read, and the two a pair.
 */
export async function loadServerTls(certPath: string | undefined, keyPath: string | undefined): Promise<ServerTls | undefined> {
  if (certPath === undefined && keyPath === undefined) return undefined
  if (certPath === undefined || keyPath === undefined) throw new DfsError('DFS_ERR_BAD_REQUEST', 'give --tls-cert and --tls-key together (the certificate and its private key)')
  const cert = await readPem(certPath, 'TLS certificate file')
  const certificate = parseCertificate(cert, certPath, 'TLS certificate file')
  const now = Date.now()
  if (Date.parse(certificate.validTo) < now) throw new DfsError('DFS_ERR_LOCAL_FILE', `the certificate in ${certPath} expired on ${certificate.validTo}`)
  if (Date.parse(certificate.validFrom) > now) throw new DfsError('DFS_ERR_LOCAL_FILE', `the certificate in ${certPath} is not valid before ${certificate.validFrom}`)

  const key = await readPrivateFile(keyPath, 'TLS key file')
  try {
    createPrivateKey(key)
  } catch {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `TLS key file ${keyPath} holds no PEM private key`)
  }

  try {
    createSecureContext({cert, key})
  } catch {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `the TLS key in ${keyPath} is not the key of the certificate in ${certPath}`)
  }

  return {cert, key}
}

/**
 * The certificate authority of `--ca`: servers' certificates must chain to it (it replaces the
 * system's list of trusted authorities for dfs's connections, so only this cluster's CA counts).
 */
export async function loadCertificateAuthority(path: string): Promise<Buffer> {
  const ca = await readPem(path, 'CA file')
  parseCertificate(ca, path, 'CA file')
  return ca
}

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (error) {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {cause: error})
  }
}

/** The first certificate of a PEM file. */
function parseCertificate(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem)
  } catch {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `${what} ${path} holds no PEM certificate`)
  }
}

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
