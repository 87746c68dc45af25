import {Args} from '@oclif/core'

import {DfsCommand, caFlag, durationFlag, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class UrlCommand extends DfsCommand {
  static override summary = 'Print a URL of a stored file that anyone holding it can read, with Range, until it expires.'
  static override description = `The URL points at one keeper holding the file and carries a read grant (?grant=…) signed by the master: a browser's <video>, curl -r or any HTTP client reads the file with it, and needs no other credential. The grant is good for that file's current generation at that keeper only, and cannot be revoked: keep --ttl short (at most 24h). Asking for it takes a token of scope read. On a cluster without a key the URL carries no grant.`

  static override examples = ['<%= config.bin %> url video.mp4', '<%= config.bin %> url video.mp4 --ttl 10m', 'curl -r 0-1023 "$(<%= config.bin %> url video.mp4)"']

  static override args = {name: Args.string({description: 'name of a stored file', required: true})}
  static override flags = {
    master: masterFlag,
    token: tokenFlag,
    ca: caFlag,
    ttl: durationFlag({description: 'how long the URL works', default: 3_600_000, defaultHelp: async () => '1h'}),
    json: jsonFlag,
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(UrlCommand)
    const {fileUrl} = await import('../roles/client/admin.js')
    const result = await fileUrl(await this.master(flags), args.name, flags.ttl)
    if (flags.json) return this.printJson(result)
    this.log(result.url)
  }
}
