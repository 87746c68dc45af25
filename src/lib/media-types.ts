import mime from 'mime-types'

/** The Content-Type a file is served with, from its name (`video/mp4` for .mp4), so browsers can stream it. */
export function contentTypeOf(name: string): string {
  return mime.lookup(name) || 'application/octet-stream'
}
