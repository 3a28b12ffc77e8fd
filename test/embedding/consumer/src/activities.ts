/** An activity of the application, registered in the same worker as the queue's. */
export async function greet(name: string): Promise<string> {
  return `hello, ${name}`;
}
