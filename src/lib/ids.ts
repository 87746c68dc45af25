import {randomBytes} from 'node:crypto'

/**
 * A fresh random id (file generations, uploads, keepers, tokens), safe in URLs and file names, and
 * never starting with "-": a token's id is typed as an argument (`dfs token revoke ID`), where a
 * leading "-" (one id in 64 of base64url) makes it a flag that the command refuses.
 */
export function newId(bytes = 12): string {
  for (;;) {
    const id = randomBytes(bytes).toString('base64url')
    if (!id.startsWith('-')) return id
  }
}
