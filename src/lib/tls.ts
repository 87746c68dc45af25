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
