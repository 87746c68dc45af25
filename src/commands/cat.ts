import {Args} from '@oclif/core'

import {DfsCommand, caFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class CatCommand extends DfsCommand {
  static override summary = 'Write a stored file to stdout, checked against its sha256 before the first byte is written.'
  static override description = `The same download as dfs get NAME -o -: from every alive replica at once, into a temp copy in $TMPDIR (so it needs that much room) whose size and sha256 are checked; only then are its bytes written to stdout. Bytes written cannot be taken back, so none is written before the whole file was verified: a failed cat writes nothing to stdout and exits non-zero with one line on stderr.`

  static override examples = ['<%= config.bin %> cat video.mp4 | ffplay -', '<%= config.bin %> cat notes.txt | less']
  static override args = {name: Args.string({description: 'name of a stored file', required: true})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag}

  protected override stdoutCarriesBytes(): boolean {
    return true
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(CatCommand)
    const {getFiles} = await import('../roles/client/get.js')
    const outcomes = await getFiles(await this.master(flags), [args.name], {output: '-'})
    this.reportEach(outcomes, {json: false, subject: () => ({name: args.name}), entry: (result) => result, line: () => undefined, what: 'downloads'})
  }
}
