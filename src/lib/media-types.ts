/** The Content-Type a file is served with, from its name (`video/mp4` for .mp4), so browsers can stream it. */
export async function contentTypeOf(name: string): Promise<string> {
  // Loaded by the first file served, not at a keeper's start: its table of types is a large JSON.
  const {default: mime} = await import('mime-types')
  return mime.lookup(name) || 'application/octet-stream'
}
