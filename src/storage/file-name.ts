/**
 * A file name safe as one path segment or object-key segment: characters outside `[A-Za-z0-9._-]` become `_`,
 * leading dots go (no hidden files, no `..`), and it keeps the last 200 characters so the extension survives.
 *
 * @param reserved a name the store uses itself (the local store's `meta.json`); it becomes `file` like an empty one.
 */
export function sanitiseFileName(name: string, reserved?: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '');
  const bounded = cleaned.slice(-200);
  return bounded.length > 0 && bounded !== reserved ? bounded : 'file';
}
