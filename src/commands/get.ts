import {Args, Flags} from '@oclif/core'

import {DfsCommand, caFlag, formatBytes, jsonFlag, masterFlag, sizeFlag, tokenFlag} from '../lib/base-command.js'
import {DEFAULTS} from '../lib/config.js'

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
    'range-size': sizeFlag({description: 'bytes per range request', default: DEFAULTS.rangeSize, defaultHelp: async () => '4MiB'}),
    json: jsonFlag,
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(GetCommand)
    const names = argv as string[]
    if ((names.length > 1 || flags.recursive) && flags.output === '-') this.fail('-o - takes one name', 2)
    if (flags.recursive && names.length > 1) this.fail('--recursive takes one folder', 2)
    const master = await this.master(flags)
    const {getFiles, getFolder} = await import('../roles/client/get.js')
    const options = {output: flags.output, sources: flags.sources, rangeSize: flags['range-size'], noClobber: flags['no-clobber']}
    const results = flags.recursive ? await getFolder(master, names[0]!, options) : await getFiles(master, names, options)
    const report = names.length === 1 && !flags.recursive ? results[0] : results
    // With -o - stdout carries the file's bytes; the report goes to stderr so that they stay intact.
    if (flags.json && flags.output === '-') this.logToStderr(JSON.stringify(report, null, 2))
    else if (flags.json) this.printJson(report)
    else if (flags.output !== '-') {
      for (const result of results) {
        const used = result.sources.filter((source) => source.bytes > 0).length
        this.log(`got ${result.name} (${formatBytes(result.size)}) into ${result.path} from ${used} replica${used === 1 ? '' : 's'}`)
      }
    }
  }
}
