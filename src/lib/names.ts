import {DfsError} from './errors.js'

export const MAX_NAME_BYTES = 255

// Control characters (C0, DEL, C1) and the backslash. "/" separates a name's folders, as in an S3
// key; names never become paths on a keeper (blobs are named by id), but a client's `get` makes
// the folders, so the segments are checked too.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\\]/
// Characters that make a name display as another one (Trojan Source, CVE-2021-42574): bidi
// embeddings, overrides and isolates, and the invisible marks (LRM, RLM, ALM); zero-width
// characters and the byte-order mark; the Unicode line and paragraph separators.
const DECEPTIVE = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\ufeff\u2028\u2029]/

const DECEPTIVE_ALL = new RegExp(DECEPTIVE.source, 'g')

/** Why a file name is unacceptable, or undefined when it is fine. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'a file name must be a string'
  if (name.length === 0) return 'a file name must not be empty'
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `file name is longer than ${MAX_NAME_BYTES} bytes`
  if (FORBIDDEN.test(name)) return `file name "${printable(name)}" must not contain "\\" or control characters`
  // ".." inside a segment ("a..b.mp4") cannot climb anywhere; only a whole "." or ".." segment can.
  const segments = name.split('/')
  if (segments.some((segment) => segment === '.' || segment === '..')) return `file name "${printable(name)}" must not have "." or ".." as a folder or name`
  if (segments.includes('')) return `file name "${printable(name)}" must not start or end with "/" nor have "//"`
  if (DECEPTIVE.test(name)) return `file name "${printable(name)}" must not contain invisible or text-direction characters`
  if (name !== name.trim()) return `file name "${printable(name)}" must not start or end with white space`
  return undefined
}

/** Throws DFS_ERR_INVALID_NAME unless `name` is safe to store, list and use inside a data directory. */
export function assertValidName(name: unknown): asserts name is string {
  const problem = nameProblem(name)
  if (problem) throw new DfsError('DFS_ERR_INVALID_NAME', problem)
}

/** A name with control and invisible characters escaped, fit to print inside a one-line error. */
export function printable(name: string): string {
  return JSON.stringify(name)
    .slice(1, -1)
    .replace(DECEPTIVE_ALL, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`)
}
