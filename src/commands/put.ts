import {Args, Flags} from '@oclif/core'

import {DfsCommand, caFlag, duration, formatBytes, jsonFlag, masterFlag, quietFlag, tokenFlag} from '../lib/base-command.js'
import {TransferBars} from '../lib/transfer-progress.js'
import type {PutOptions} from '../roles/client/put.js'

export default class PutCommand extends DfsCommand {
  static override summary = 'Upload files; each succeeds only once the master has recorded it.'
  static override description = `Each file is hashed, sent to the least-loaded alive keeper the master names, verified and fsynced there, and recorded by the master; only then is it reported as stored. The master then copies it to more keepers in the background. Several files are uploaded concurrently. A name that already exists is refused and the stored file is kept, unless --force replaces it. FILE - reads stdin (with --name): it is spooled to a temp file in $TMPDIR while it arrives, then uploaded like a file.`

  static override examples = [
    '<%= config.bin %> put video.mp4',
    '<%= config.bin %> put clip.mp4 --name holiday.mp4',
    '<%= config.bin %> put *.mp4 --json',
    '<%= config.bin %> put ~/videos --recursive                  # as videos/…',
    '<%= config.bin %> put ~/videos --recursive --prefix 2024/trip # as 2024/trip/…',
    'ffmpeg -i in.mov -f mp4 -movflags frag_keyframe - | <%= config.bin %> put - --name out.mp4',
  ]

  static override strict = false
  static override args = {file: Args.string({description: 'local files to upload, or - for stdin', required: true})}
  static override flags = {
    master: masterFlag,
    token: tokenFlag,
    ca: caFlag,
    name: Flags.string({description: 'store under this name (only with one file)'}),
    recursive: Flags.boolean({char: 'r', description: 'store every file under each directory given, as DIRNAME/relative/path', default: false}),
    force: Flags.boolean({char: 'f', description: 'replace a file of the same name: readers get the old file or the new one whole, and the old one is deleted once the new one is recorded', default: false}),
    prefix: Flags.string({description: 'store under this folder instead of DIRNAME (--recursive), or before each file\'s name', helpValue: 'FOLDER'}),
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
    if (flags.name !== undefined && (flags.recursive || flags.prefix !== undefined)) this.fail('--name stores one file; --recursive and --prefix name many', 2)
    const wait = flags.wait === 'all' ? 'all' : Number(flags.wait)
    if (wait !== 'all' && !(Number.isInteger(wait) && wait >= 1)) this.fail(`--wait takes a number of replicas (1 or more) or "all", not "${flags.wait}"`, 2)
    const master = await this.master(flags)
    const {itemsToPut, putFiles, putStream} = await import('../roles/client/put.js')
    const stdin = files[0] === '-'
    const items = stdin ? [] : flags.name === undefined ? await itemsToPut(files, {recursive: flags.recursive, prefix: flags.prefix}) : [{path: files[0]!, name: flags.name}]
    const bars = await TransferBars.open(stdin ? 1 : items.length, flags.quiet || flags.json)
    const options: PutOptions = {concurrency: flags.concurrency, replace: flags.force, wait, waitTimeoutMs: flags['wait-timeout'], onProgress: bars?.update}
    const outcomes = await (stdin ? putStream(master, process.stdin, flags.name!, options).then((outcome) => [outcome]) : putFiles(master, items, options)).finally(() => bars?.stop())
    this.reportEach(outcomes, {
      json: flags.json,
      subject: (index) => ({path: outcomes[index]!.path}),
      entry: (result) => result,
      line: ({name, size, sha256, keeper, replicas}) => `stored ${name} (${formatBytes(size)}, sha256 ${sha256.slice(0, 12)}…) on ${keeper}${replicas > 1 ? `, ${replicas} replicas durable` : ''}`,
      what: 'uploads',
    })
  }
}
