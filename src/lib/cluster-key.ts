import {hkdfSync, randomBytes, webcrypto} from 'node:crypto'
import {readFile, stat} from 'node:fs/promises'
import {isIP} from 'node:net'
import {inspect} from 'node:util'

import {writePrivateFile} from './durable-file.js'
import {DfsError} from './errors.js'

/** Bytes of randomness in a new key; a shorter key is refused. */
export const KEY_BYTES = 32

/**
 * What a sub-key is for. Each kind of credential is signed with its own key, derived from the
 * cluster key, so that one kind can never be accepted as another (a grant as a client token, a
 * client token as a keeper's word).
 */
export type KeyPurpose = 'client-token' | 'grant' | 'member'

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/

/**
 * The secret every master and keeper of one cluster share (like SeaweedFS's `jwt.signing.key`).
 * It holds only derived, non-extractable sub-keys: nothing here can print or serialize the key.
 */
export class ClusterKey {
  /** A fingerprint, safe to log and compare, that tells two keys apart without revealing either. */
  readonly id: string
  readonly #subkeys: ReadonlyMap<KeyPurpose, webcrypto.CryptoKey>

  private constructor(id: string, subkeys: Map<KeyPurpose, webcrypto.CryptoKey>) {
    this.id = id
    this.#subkeys = subkeys
  }

  /** Derives the sub-keys (HKDF-SHA256, one `info` per purpose) from the raw key bytes. */
  static async fromBytes(secret: Uint8Array): Promise<ClusterKey> {
    if (secret.length < KEY_BYTES) throw new DfsError('DFS_ERR_BAD_REQUEST', `a cluster key needs at least ${KEY_BYTES} bytes, not ${secret.length}`)
    const derive = (info: string) => new Uint8Array(hkdfSync('sha256', secret, 'dfs cluster key', info, 32))
    const subkeys = new Map<KeyPurpose, webcrypto.CryptoKey>()
    for (const purpose of ['client-token', 'grant', 'member'] as const) {
      const raw = derive(`dfs/v1/${purpose}`)
      subkeys.set(purpose, await webcrypto.subtle.importKey('raw', raw, {name: 'HMAC', hash: 'SHA-256'}, false, ['sign', 'verify']))
      raw.fill(0)
    }

    const id = Buffer.from(derive('dfs/v1/key-id')).subarray(0, 6).toString('hex')
    return new ClusterKey(id, subkeys)
  }

  /** Loads a key file: refused unless it is a regular file only its owner can read, of a long enough key. */
  static async load(path: string): Promise<ClusterKey> {
    const secret = await readKeyFile(path)
    try {
      return await ClusterKey.fromBytes(secret)
    } finally {
      secret.fill(0)
    }
  }

  /** The sub-key that signs and verifies one kind of credential. */
  subkey(purpose: KeyPurpose): webcrypto.CryptoKey {
    return this.#subkeys.get(purpose)!
  }

  toJSON(): {id: string} {
    return {id: this.id}
  }

  [inspect.custom](): string {
    return `ClusterKey(${this.id})`
  }
}

/**
 * Writes a new random key to `path` as one line of base64url, mode 0600: written to a temp file
 * beside it, fsynced, then moved into place. An existing file is kept unless `force`.
 */
export async function createKeyFile(path: string, options: {force?: boolean} = {}): Promise<void> {
  try {
    await writePrivateFile(path, randomBytes(KEY_BYTES).toString('base64url') + '\n', {replace: options.force === true})
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new DfsError('DFS_ERR_EXISTS', `${path} exists; keep it, or pass --force to replace it (every master and keeper then needs the new key)`)
    if (code === 'ENOENT') throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot write ${path}: its directory does not exist`, {cause: error})
    if (code) throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot write ${path}: ${code}`, {cause: error})
    throw error
  }
}

/** The key bytes of a key file, after checking who may read it. */
async function readKeyFile(path: string): Promise<Buffer> {
  const text = (await readPrivateFile(path, 'key file')).toString('utf8').trim()
  if (!BASE64.test(text)) throw new DfsError('DFS_ERR_LOCAL_FILE', `key file ${path} is not one line of base64 (dfs secret create writes one)`)
  const secret = Buffer.from(text, 'base64')
  if (secret.length < KEY_BYTES) {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `key file ${path} holds a ${secret.length}-byte key; at least ${KEY_BYTES} bytes are needed (dfs secret create makes one)`)
  }

  return secret
}

/**
 * The bytes of a file that holds a secret (a cluster key, a TLS private key), refused unless it is
 * a regular file that only its owner may access: a secret others can read is a secret no more.
 * `what` names it in the messages ("key file", "TLS key file").
 */
export async function readPrivateFile(path: string, what: string): Promise<Buffer> {
  let mode: number
  try {
    const info = await stat(path)
    if (!info.isFile()) throw new DfsError('DFS_ERR_LOCAL_FILE', `${what} ${path} is not a regular file`)
    mode = info.mode & 0o777
  } catch (error) {
    if (error instanceof DfsError) throw error
    throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, {cause: error})
  }

  if ((mode & 0o077) !== 0) {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `${what} ${path} is open to group or others (mode ${mode.toString(8).padStart(4, '0')}): run chmod 600 ${path}`)
  }

  return readFile(path).catch((error: NodeJS.ErrnoException) => {
    throw new DfsError('DFS_ERR_LOCAL_FILE', `cannot read ${what} ${path}: ${error.code ?? String(error)}`, {cause: error})
  })
}

/** Whether a listen address is reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  if (bare === 'localhost') return true
  if (isIP(bare) === 4) return bare.startsWith('127.')
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare)
  return false
}

/**
 * Without a cluster key, anyone who can reach a server can read, write and delete every file: such
 * a server listens on loopback only, unless told `--insecure`. Returns the warning to print then.
 */
export function checkListenWithoutKey(role: 'master' | 'keeper', host: string, key: ClusterKey | undefined, insecure: boolean): string | undefined {
  if (key || isLoopback(host)) return undefined
  if (!insecure) {
    throw new DfsError(
      'DFS_ERR_BAD_REQUEST',
      `refusing to listen on ${host} without a cluster key: anyone who reaches it could read, write and delete every file. Give --secret-file (make one with: dfs secret create FILE), or --insecure on a network you trust`,
    )
  }

  return `WARNING: this ${role} listens on ${host} with no cluster key (--insecure): anyone who can reach it can read, write and delete every file`
}
