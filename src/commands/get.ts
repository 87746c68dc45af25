import {DfsCommand, oclifArgs, oclifFlags} from '../lib/base-command.js'
import {runGet, getSpec} from '../cli/get.js'

export default class GetCommand extends DfsCommand {
  static override summary = 'Download files from all their replicas at once, in ranges, verified by sha256.'
  static override description = `The file is cut into ranges fetched from every alive replica in parallel; a replica that fails mid-way hands its ranges to another. The bytes go to a temp file whose size and sha256 are checked before it is renamed into place. With -o - the file goes to stdout once it is checked (its temp copy is in $TMPDIR), so stdout never gets a wrong byte; the --json report then goes to stderr.`

  static override examples = [
    '<%= config.bin %> get video.mp4',
    '<%= config.bin %> get video.mp4 -o /tmp/copy.mp4',
    '<%= config.bin %> get video.mp4 -o - | ffplay -',
    '<%= config.bin %> get a.mp4 b.mp4 -o downloads/',
    '<%= config.bin %> get videos/ --recursive -o ~/videos',
  ]

  static override args = oclifArgs(getSpec.args)
  static override flags = oclifFlags(getSpec.flags)
  static override strict = getSpec.strict

  protected override stdoutCarriesBytes(): boolean {
    const at = this.argv.findIndex((arg) => arg === '-o' || arg === '--output')
    return (at !== -1 && this.argv[at + 1] === '-') || this.argv.includes('--output=-') || this.argv.includes('-o=-')
  }

  async run(): Promise<void> {
    await runGet(this.io, await this.parseSpec(getSpec))
  }
}
