import {Args, Flags} from '@oclif/core'

import {DfsCommand, caFlag, formatBytes, jsonFlag, masterFlag, quietFlag, sizeFlag, tokenFlag} from '../lib/base-command.js'
import {TransferBars} from '../lib/transfer-progress.js'
import {DEFAULTS} from '../lib/config.js'

const MIN_RANGE_SIZE = 64 * 1024

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

  static override strict = false
  static override args = {name: Args.string({description: 'names of stored files', required: true})}
  static override flags = {
    master: masterFlag,
    token: tokenFlag,
    ca: caFlag,
    output: Flags.string({char: 'o', description: 'file to write, a directory for several names (each by its base name), or - for stdout'}),
    recursive: Flags.boolean({char: 'r', description: 'NAME is a folder: download every file under it into -o DIR (by default its last name), recreating its tree', default: false}),
    'no-clobber': Flags.boolean({char: 'n', description: 'refuse to overwrite a local file that exists', default: false}),
    sources: Flags.integer({description: 'read from at most this many replicas', min: 1}),
    'range-size': sizeFlag({description: 'bytes per range request (at least 64KiB)', default: DEFAULTS.rangeSize, defaultHelp: async () => '4MiB'}),
    json: jsonFlag,
    quiet: quietFlag,
  }

  protected override stdoutCarriesBytes(): boolean {
    const at = this.argv.findIndex((arg) => arg === '-o' || arg === '--output')
    return (at !== -1 && this.argv[at + 1] === '-') || this.argv.includes('--output=-') || this.argv.includes('-o=-')
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(GetCommand)
    const names = argv as string[]
    if ((names.length > 1 || flags.recursive) && flags.output === '-') this.fail('-o - takes one name', 2)
    if (flags.recursive && names.length > 1) this.fail('--recursive takes one folder', 2)
    // One request per range: tiny ranges make a download crawl (3.4 MiB in 1-byte ranges took 9 minutes).
    if (flags['range-size'] < MIN_RANGE_SIZE) this.fail(`--range-size must be at least 64KiB, not ${flags['range-size']} bytes`, 2)
    const master = await this.master(flags)
    const {getFiles, getFolder} = await import('../roles/client/get.js')
    const bars = await TransferBars.open(names.length, flags.quiet || flags.json)
    const options = {output: flags.output, sources: flags.sources, rangeSize: flags['range-size'], noClobber: flags['no-clobber'], onProgress: bars?.update}
    const outcomes = await (flags.recursive ? getFolder(master, names[0]!, options) : getFiles(master, names, options)).finally(() => bars?.stop())
    this.reportEach(outcomes, {
      json: flags.json,
      subject: (index) => ({name: outcomes[index]!.name}),
      entry: (result) => result,
      line: (result) => {
        // With -o - stdout carries the file's bytes: nothing else goes there.
        if (flags.output === '-') return undefined
        const used = result.sources.filter((source) => source.bytes > 0).length
        return `got ${result.name} (${formatBytes(result.size)}) into ${result.path} from ${used} replica${used === 1 ? '' : 's'}`
      },
      what: 'downloads',
    })
  }
}
