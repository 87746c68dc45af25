import {DfsCommand, oclifArgs, oclifFlags} from '../lib/base-command.js'
import {runCat, catSpec} from '../cli/cat.js'

export default class CatCommand extends DfsCommand {
  static override summary = 'Write a stored file to stdout, checked against its sha256 before the first byte is written.'
  static override description = `The same download as dfs get NAME -o -: from every alive replica at once, into a temp copy in $TMPDIR (so it needs that much room) whose size and sha256 are checked; only then are its bytes written to stdout. Bytes written cannot be taken back, so none is written before the whole file was verified: a failed cat writes nothing to stdout and exits non-zero with one line on stderr.`

  static override examples = ['<%= config.bin %> cat video.mp4 | ffplay -', '<%= config.bin %> cat notes.txt | less']
  static override args = oclifArgs(catSpec.args)
  static override flags = oclifFlags(catSpec.flags)
  static override strict = catSpec.strict

  protected override stdoutCarriesBytes(): boolean {
    return true
  }

  async run(): Promise<void> {
    await runCat(this.io, await this.parseSpec(catSpec))
  }
}
