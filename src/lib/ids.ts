import {randomBytes} from 'node:crypto'

/** A fresh random id (file generations, uploads, keepers), safe in URLs and file names. */
export function newId(bytes = 12): string {
  return randomBytes(bytes).toString('base64url')
}
