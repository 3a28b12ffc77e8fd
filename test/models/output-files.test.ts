import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { LogForwarder } from '../../src/models/cog-webhooks';
import { imageSize } from '../../src/models/image-size';
import { decodeDataUri, outputFileName } from '../../src/models/output-files';

describe('output files', () => {
  it('reads the size of PNG, JPEG, GIF, WebP and BMP images from their headers', () => {
    const png = PNG.sync.write(new PNG({ width: 7, height: 3 }));
    const jpg = jpeg.encode({ data: Buffer.alloc(9 * 4 * 4), width: 9, height: 4 }, 80).data;
    const gif = Buffer.from('474946383961' + '0b00' + '0500' + '000000', 'hex');
    const bmp = Buffer.alloc(30);
    bmp.write('BM', 0, 'latin1');
    bmp.writeInt32LE(12, 18);
    bmp.writeInt32LE(-6, 22); // top-down rows: negative height
    const webp = Buffer.alloc(30);
    webp.write('RIFF', 0, 'latin1');
    webp.write('WEBPVP8X', 8, 'latin1');
    webp.writeUIntLE(639, 24, 3);
    webp.writeUIntLE(479, 27, 3);

    expect(imageSize(png)).toEqual({ width: 7, height: 3 });
    expect(imageSize(jpg)).toEqual({ width: 9, height: 4 });
    expect(imageSize(gif)).toEqual({ width: 11, height: 5 });
    expect(imageSize(bmp)).toEqual({ width: 12, height: 6 });
    expect(imageSize(webp)).toEqual({ width: 640, height: 480 });
    expect(imageSize(Buffer.from('not an image'))).toBeUndefined();
    expect(imageSize(png.subarray(0, 10))).toBeUndefined();
  });

  it('decodes data URIs and names files after their content type', () => {
    expect(decodeDataUri('data:image/png;base64,iVBORw==')).toEqual({
      data: Buffer.from('iVBORw==', 'base64'),
      contentType: 'image/png',
    });
    expect(decodeDataUri('data:,hello%20world')).toEqual({
      data: Buffer.from('hello world'),
      contentType: 'text/plain',
    });
    expect(decodeDataUri('https://example.test/a.png')).toBeUndefined();
    expect(outputFileName('image', 'image/jpeg')).toBe('image.jpg');
    expect(outputFileName('output', 'video/mp4')).toBe('output.mp4');
    expect(outputFileName('output', 'application/x-thing')).toBe('output.xthing');
  });
});

describe("forwarding Cog's cumulative logs", () => {
  it('passes each complete line on once, ignores stale updates, and flushes the last partial line at the end', () => {
    const lines: string[] = [];
    const forwarder = new LogForwarder((line) => lines.push(line));
    forwarder.update('step 1\nstep 2\nst');
    forwarder.update('step 1\n'); // an older webhook arriving late
    forwarder.update('step 1\nstep 2\nstep 3\n');
    expect(lines).toEqual(['step 1', 'step 2', 'step 3']);
    forwarder.update('step 1\nstep 2\nstep 3\ndone, no newline');
    forwarder.finish('');
    expect(lines).toEqual(['step 1', 'step 2', 'step 3', 'done, no newline']);
  });
});
