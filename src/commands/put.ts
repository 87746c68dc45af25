import {Args, Flags} from '@oclif/core'

import {DfsCommand, caFlag, duration, formatBytes, jsonFlag, masterFlag, quietFlag, tokenFlag} from '../lib/base-command.js'
import {TransferBars} from '../lib/transfer-progress.js'
import type {PutOptions} from '../roles/client/put.js'

export default class PutCommand extends DfsCommand {
  static override summary = 'Upload files; each succeeds only once the master has recorded it.'
  static override description = `Each file is hashed, sent to the least-loaded alive keeper the master names, verified and fsynced there, and recorded by the master; only then is it reported as stored. The master then copies it to more keepers in the background. Several files are uploaded concurrently. A name that already exists is refused and the stored file is kept. FILE - reads stdin (with --name): it is spooled to a temp file in $TMPDIR while it arrives, then uploaded like a file.`

  static override examples = [
    '<%= config.bin %> put video.mp4',
    '<%= config.bin %> put clip.mp4 --name holiday.mp4',
    '<%= config.bin %> put *.mp4 --json',
    'ffmpeg -i in.mov -f mp4 -movflags frag_keyframe - | <%= config.bin %> put - --name out.mp4',
  ]

  static override strict = false
  static override args = {file: Args.string({description: 'local files to upload, or - for stdin', required: true})}
  static override flags = {
    master: masterFlag,
    token: tokenFlag,
    ca: caFlag,
    name: Flags.string({description: 'store under this name (only with one file)'}),
    concurrency: Flags.integer({description: 'uploads under way at once', default: 8, min: 1}),
    wait: Flags.string({
      description: 'succeed only once N replicas (or all: the target) are durable and recorded; 1 risks losing a file whose only disk dies before it is copied',
      default: '1',
      helpValue: 'N|all',
    }),
    'wait-timeout': duration('how long --wait may wait', 60_000),
    json: jsonFlag,
    quiet: quietFlag,
  }

  async run(): Promise<void> {
    const {argv, flags} = await this.parse(PutCommand)
    const files = argv as string[]
    if (files.includes('-') && (files.length !== 1 || flags.name === undefined)) this.fail('put - (stdin) takes no other file and needs --name', 2)
    if (flags.name !== undefined && files.length !== 1) this.fail('--name needs exactly one file', 2)
    const wait = flags.wait === 'all' ? 'all' : Number(flags.wait)
    if (wait !== 'all' && !(Number.isInteger(wait) && wait >= 1)) this.fail(`--wait takes a number of replicas (1 or more) or "all", not "${flags.wait}"`, 2)
    const master = await this.master(flags)
    const {putFiles, putStream} = await import('../roles/client/put.js')
    const bars = await TransferBars.open(files.length, flags.quiet || flags.json)
    const options: PutOptions = {concurrency: flags.concurrency, wait, waitTimeoutMs: flags['wait-timeout'], onProgress: bars?.update}
    const outcomes = await (files[0] === '-' ? putStream(master, process.stdin, flags.name!, options).then((outcome) => [outcome]) : putFiles(master, files.map((path) => ({path, name: flags.name})), options)).finally(() => bars?.stop())
    this.reportEach(outcomes, {
      json: flags.json,
      subject: (index) => ({path: files[index]!}),
      entry: (result) => result,
      line: ({name, size, sha256, keeper, replicas}) => `stored ${name} (${formatBytes(size)}, sha256 ${sha256.slice(0, 12)}…) on ${keeper}${replicas > 1 ? `, ${replicas} replicas durable` : ''}`,
      what: 'uploads',
    })
  }
}
