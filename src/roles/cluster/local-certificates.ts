import {X509Certificate, createPrivateKey, randomBytes} from 'node:crypto'
import {chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {execa} from 'execa'

import {syncDirectory} from '../../lib/durable-file.js'
import {DfsError} from '../../lib/errors.js'

/** Where the files of a local cluster's TLS live: a private CA, and one certificate it signed. */
export interface LocalCertificates {
  /** The CA's certificate: what clients pass as --ca. */
  ca: string
  /** Its private key (mode 0600), kept to sign a new server certificate when this one expires. */
  caKey: string
  /** The servers' certificate, for 127.0.0.1, ::1 and localhost. */
  cert: string
  /** Its private key, mode 0600. */
  key: string
}

const CA_DAYS = 3650
const SERVER_DAYS = 825
// A certificate that ends sooner than this is made anew at start rather than left to expire under a running cluster.
const RENEW_BEFORE_MS = 7 * 24 * 60 * 60 * 1000

/**
 * The private CA and server certificate of `dfs cluster up --tls`, in `dir` (DIR/tls): made with
 * openssl on the first run and kept, so that clients holding ca.pem keep trusting the cluster
 * across restarts. A file that is missing, unreadable, not a pair with its key or about to expire
 * is made again (a new CA also means a new server certificate). Keys are mode 0600, in a 0700
 * directory.
 */
export async function ensureLocalCertificates(dir: string): Promise<LocalCertificates> {
  const files: LocalCertificates = {ca: join(dir, 'ca.pem'), caKey: join(dir, 'ca-key.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem')}
  await mkdir(dir, {recursive: true, mode: 0o700})
  await chmod(dir, 0o700)
  const ca = await usablePair(files.ca, files.caKey)
  const server = ca ? await usablePair(files.cert, files.key) : undefined
  if (ca && server && server.checkIssued(ca) && server.verify(ca.publicKey)) return files

  const work = await mkdtemp(join(dir, '.new-'))
  try {
    if (!ca) await openssl(work, ['req', '-x509', ...NEW_KEY, '-keyout', 'ca-key.pem', '-out', 'ca.pem', '-days', String(CA_DAYS), '-subj', '/CN=dfs local cluster CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
    const caFiles = ca ? {cert: files.ca, key: files.caKey} : {cert: join(work, 'ca.pem'), key: join(work, 'ca-key.pem')}
    await writeFile(join(work, 'server.ext'), 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n')
    await openssl(work, ['req', '-new', ...NEW_KEY, '-keyout', 'key.pem', '-out', 'server.csr', '-subj', '/CN=localhost'])
    await openssl(work, ['x509', '-req', '-in', 'server.csr', '-CA', caFiles.cert, '-CAkey', caFiles.key, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(SERVER_DAYS), '-extfile', 'server.ext', '-out', 'cert.pem'])

    // Keys first, each before its certificate: a start cut short leaves a pair that does not match, which the next run makes again.
    const moves: Array<[string, string]> = [['key.pem', files.key], ['cert.pem', files.cert]]
    if (!ca) moves.unshift(['ca-key.pem', files.caKey], ['ca.pem', files.ca])
    for (const [name, to] of moves) {
      if (name.endsWith('key.pem')) await chmod(join(work, name), 0o600)
      await rename(join(work, name), to)
    }

    await syncDirectory(dir)
  } finally {
    await rm(work, {recursive: true, force: true})
  }

  return files
}

// An elliptic-curve key (P-256): small, fast, and accepted by every TLS client.
const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

/** A certificate and its key, if both are readable, belong together and stay valid for a while. */
async function usablePair(certPath: string, keyPath: string): Promise<X509Certificate | undefined> {
  try {
    const certificate = new X509Certificate(await readFile(certPath))
    if (!certificate.checkPrivateKey(createPrivateKey(await readFile(keyPath)))) return undefined
    const now = Date.now()
    if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) < now + RENEW_BEFORE_MS) return undefined
    return certificate
  } catch {
    return undefined
  }
}

async function openssl(cwd: string, args: string[]): Promise<void> {
  const result = await execa('openssl', args, {cwd, reject: false, stdin: 'ignore'})
  if (result.exitCode === 0) return
  if ((result as {code?: string}).code === 'ENOENT') {
    throw new DfsError('DFS_ERR_LOCAL_FILE', 'dfs cluster up --tls makes its certificates with the openssl command, which was not found: install OpenSSL, or start the servers with certificates of your own (--tls-cert, --tls-key)')
  }

  const said = String(result.stderr).trim().split('\n').filter(Boolean).at(-1) ?? result.shortMessage
  throw new DfsError('DFS_ERR_INTERNAL', `openssl ${args[0]} failed while making the cluster's certificates: ${said}`)
}
