import { randomUUID } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A stored file as fal describes it in outputs (`width`/`height` are added by image models). */
export interface StoredFile {
  url: string;
  content_type: string;
  file_name: string;
  file_size: number;
  width?: number;
  height?: number;
}

export interface FileContent {
  data: Buffer;
  contentType: string;
}

/** Metadata kept beside each file so the API can serve it with the right headers. */
interface FileMeta {
  contentType: string;
  fileName: string;
  createdAt: string;
}

// Ids are our own UUIDs and names are sanitised, so a path can never leave the store's directory.
const SAFE_NAME = /^[A-Za-z0-9._-]{1,200}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Files on local disk under `dir/<id>/`, served by the API at `<publicBaseUrl>/files/<id>/<name>`.
 * Workers and the API must see the same directory (one host, or a shared volume).
 */
export class LocalFileStore {
  constructor(
    private readonly dir: string,
    private readonly publicBaseUrl: string,
  ) {}

  async save(file: { data: Buffer; contentType: string; fileName: string }): Promise<StoredFile> {
    const id = randomUUID();
    const fileName = sanitiseName(file.fileName);
    const folder = join(this.dir, id);
    await mkdir(folder, { recursive: true });
    await writeFile(join(folder, fileName), file.data);
    const meta: FileMeta = { contentType: file.contentType, fileName, createdAt: new Date().toISOString() };
    await writeFile(join(folder, 'meta.json'), JSON.stringify(meta));
    return {
      url: `${this.publicBaseUrl.replace(/\/+$/, '')}/files/${id}/${encodeURIComponent(fileName)}`,
      content_type: file.contentType,
      file_name: fileName,
      file_size: file.data.length,
    };
  }

  /** Reads a stored file, or returns undefined when there is none by that id and name. */
  async read(id: string, fileName: string): Promise<FileContent | undefined> {
    if (!UUID.test(id) || !SAFE_NAME.test(fileName) || fileName === 'meta.json') return undefined;
    const folder = join(this.dir, id);
    try {
      const meta = JSON.parse(await readFile(join(folder, 'meta.json'), 'utf8')) as FileMeta;
      if (meta.fileName !== fileName) return undefined;
      const path = join(folder, fileName);
      if (!(await stat(path)).isFile()) return undefined;
      return { data: await readFile(path), contentType: meta.contentType };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}

function sanitiseName(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '');
  const bounded = cleaned.slice(-200);
  return bounded.length > 0 && bounded !== 'meta.json' ? bounded : 'file';
}
