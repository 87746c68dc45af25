import {DfsCommand, caFlag, formatAge, formatBytes, formatTable, jsonFlag, masterFlag, tokenFlag} from '../lib/base-command.js'

export default class LsCommand extends DfsCommand {
  static override summary = 'List stored files with their size and alive replicas.'
  static override examples = ['<%= config.bin %> ls', '<%= config.bin %> ls --json']
  static override flags = {master: masterFlag, token: tokenFlag, ca: caFlag, json: jsonFlag}

  async run(): Promise<void> {
    const {flags} = await this.parse(LsCommand)
    const {listFiles} = await import('../roles/client/admin.js')
    const files = await listFiles(await this.master(flags))
    if (flags.json) return this.printJson(files)
    if (files.length === 0) return this.log('no files')
    const rows = files.map((file) => ({name: file.name, size: formatBytes(file.size), replicas: `${file.replicas}/${file.target}`, created: formatAge(file.createdAt)}))
    this.log(formatTable(rows, ['name', 'size', 'replicas', 'created']))
  }
}
