// Pixel sizes read from image headers, without decoding: for the `width`/`height` fal adds to output images, and
// for models that must refuse an oversized input before allocating its bitmap.

/** Width and height of an image, read from its header. */
export interface ImageSize {
  width: number;
  height: number;
}

/**
 * Reads the pixel size of a PNG, JPEG, GIF, WebP or BMP from its first bytes, without decoding it;
 * undefined for anything else (or a truncated header).
 */
export function imageSize(data: Buffer): ImageSize | undefined {
  try {
    if (data.length >= 24 && data.readUInt32BE(0) === 0x89504e47 && data.toString('latin1', 12, 16) === 'IHDR') {
      return { width: data.readUInt32BE(16), height: data.readUInt32BE(20) };
    }
    if (data.length >= 10 && /^GIF8[79]a$/.test(data.toString('latin1', 0, 6))) {
      return { width: data.readUInt16LE(6), height: data.readUInt16LE(8) };
    }
    if (data.length >= 26 && data.toString('latin1', 0, 2) === 'BM') {
      return { width: data.readInt32LE(18), height: Math.abs(data.readInt32LE(22)) };
    }
    if (data.length >= 30 && data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') {
      return webpSize(data);
    }
    if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8) return jpegSize(data);
  } catch {
    // A header that claims more than the buffer holds: not an image we can size.
  }
  return undefined;
}

function webpSize(data: Buffer): ImageSize | undefined {
  const chunk = data.toString('latin1', 12, 16);
  if (chunk === 'VP8X') return { width: data.readUIntLE(24, 3) + 1, height: data.readUIntLE(27, 3) + 1 };
  if (chunk === 'VP8L' && data[20] === 0x2f) {
    const bits = data.readUInt32LE(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8 ') return { width: data.readUInt16LE(26) & 0x3fff, height: data.readUInt16LE(28) & 0x3fff };
  return undefined;
}

/** Width and height from the first start-of-frame segment, walking the JPEG's marker segments. */
function jpegSize(data: Buffer): ImageSize | undefined {
  let offset = 2;
  // A frame header needs 9 bytes from its marker: 2 marker, 2 length, 1 precision, 2 height, 2 width.
  while (offset + 9 <= data.length) {
    if (data[offset] !== 0xff) return undefined;
    const marker = data[offset + 1]!;
    if (marker === 0xff) {
      offset += 1; // fill byte
      continue;
    }
    // Start-of-frame markers (baseline, progressive, ...); C4 (DHT), C8 (JPG) and CC (DAC) share the range.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: data.readUInt16BE(offset + 5), width: data.readUInt16BE(offset + 7) };
    }
    // TEM, RST0-7, SOI and EOI stand alone (no length field).
    const standalone = marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9);
    offset += standalone ? 2 : 2 + data.readUInt16BE(offset + 2);
  }
  return undefined;
}
