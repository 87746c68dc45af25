import {Args} from '@oclif/core'

import {DfsCommand, PagedTable, caFlag, formatAge, formatBytes, jsonFlag, masterFlag, nameCell, tokenFlag} from '../lib/base-command.js'

export default class LsCommand extends DfsCommand {
  static override summary = 'List stored files with their size and alive replicas.'
  static override description = `Names may hold folders, as S3 keys do ("videos/2024/a.mp4"). A PATTERN without wildcards lists every name that starts with it ("videos/" lists that folder and all below it); with wildcards it lists the names it matches whole: "*" and "?" stay within one folder, "**" crosses folders. Quote a pattern so that the shell leaves it alone.`

  static override examples = [
    '<%= config.bin %> ls',
    '<%= config.bin %> ls videos/',
    "<%= config.bin %> ls 'videos/*.mp4'",
    "<%= config.bin %> ls 'videos/**/*.mp4' --json",
  ]

  static override args = {pattern: Args.string({description: 'a prefix, or a glob (*, ?, **) of names', required: false})}
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {args, flags} = await this.parse(LsCommand)
    const {filePages} = await import('../roles/client/admin.js')
    // Printed as the pages arrive: the first line comes at once, and no listing is held whole.
    const table = new PagedTable(['name', 'size', 'replicas', 'created'])
    let printed = 0
    for await (const files of filePages(await this.master(flags), args.pattern)) {
      if (files.length === 0) continue
      // The --json array is JSON.stringify(files, null, 2), written a page at a time.
      if (flags.json) process.stdout.write(files.map((file) => `${printed++ === 0 ? '[' : ','}\n  ${JSON.stringify(file, null, 2).replaceAll('\n', '\n  ')}`).join(''))
      else {
        printed += files.length
        this.log(table.format(files.map((file) => ({name: nameCell(file.name), size: formatBytes(file.size), replicas: `${file.replicas}/${file.target}`, created: formatAge(file.createdAt)}))))
      }
    }

    if (flags.json) this.log(printed === 0 ? '[]' : '\n]')
    else if (printed === 0) this.log(args.pattern === undefined ? 'no files' : `no files match ${args.pattern}`)
  }
}
