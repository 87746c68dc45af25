import {DfsError} from './errors.js'

export const MAX_NAME_BYTES = 255

// Control characters (C0, DEL, C1) and both path separators; checked before a name reaches a path.
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/\\]/

/** Why a file name is unacceptable, or undefined when it is fine. */
export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'a file name must be a string'
  if (name.length === 0) return 'a file name must not be empty'
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `file name is longer than ${MAX_NAME_BYTES} bytes`
  if (name === '.' || name === '..') return `"${name}" is not a file name`
  if (name.includes('..')) return `file name "${printable(name)}" must not contain ".."`
  if (FORBIDDEN.test(name)) return `file name "${printable(name)}" must not contain "/", "\\" or control characters`
  if (name !== name.trim()) return `file name "${printable(name)}" must not start or end with white space`
  return undefined
}

/** Throws DFS_ERR_INVALID_NAME unless `name` is safe to store, list and use inside a data directory. */
export function assertValidName(name: unknown): asserts name is string {
  const problem = nameProblem(name)
  if (problem) throw new DfsError('DFS_ERR_INVALID_NAME', problem)
}

/** A name with control characters escaped, fit to print inside a one-line error. */
export function printable(name: string): string {
  return JSON.stringify(name).slice(1, -1)
}
