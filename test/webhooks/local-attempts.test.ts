import { LocalAttemptGate } from '../../src/webhooks/local-attempts';

describe('LocalAttemptGate', () => {
  const A = 'https://a.example/hook';
  const B = 'https://b.example/other';

  it('lets at most maxInFlight local attempts run at once, and a place left twice counts once', () => {
    const gate = new LocalAttemptGate({ maxInFlight: 2 });
    const one = gate.tryEnter(A);
    const two = gate.tryEnter(B);
    expect(one).toBeDefined();
    expect(two).toBeDefined();
    expect(gate.tryEnter(A)).toBeUndefined();
    one!();
    one!();
    expect(gate.tryEnter(A)).toBeDefined();
    expect(gate.tryEnter(A)).toBeUndefined();
  });

  it('makes none with maxInFlight 0', () => {
    expect(new LocalAttemptGate({ maxInFlight: 0 }).tryEnter(A)).toBeUndefined();
  });

  it('sends a receiver that was slow to activities until its mark expires, per origin', () => {
    let now = 0;
    const gate = new LocalAttemptGate({ slowAfterMs: 1000, rememberSlowMs: 60_000, now: () => now });
    gate.record(A, 999);
    expect(gate.tryEnter(A)).toBeDefined();
    gate.record(A, 1000);
    expect(gate.tryEnter('https://a.example/another-path')).toBeUndefined();
    expect(gate.tryEnter('https://a.example:8443/hook')).toBeDefined();
    expect(gate.tryEnter(B)).toBeDefined();
    now = 59_999;
    expect(gate.tryEnter(A)).toBeUndefined();
    now = 60_000;
    expect(gate.tryEnter(A)).toBeDefined();
  });

  it('clears the mark when an attempt (an activity) finds the receiver quick again', () => {
    const gate = new LocalAttemptGate({ slowAfterMs: 1000 });
    gate.record(A, 5000);
    expect(gate.tryEnter(A)).toBeUndefined();
    gate.record(A, 20);
    expect(gate.tryEnter(A)).toBeDefined();
  });

  it('forgets the oldest marks past maxRemembered', () => {
    const gate = new LocalAttemptGate({ slowAfterMs: 1, maxRemembered: 2 });
    gate.record(A, 10);
    gate.record(B, 10);
    gate.record('https://c.example/', 10);
    expect(gate.tryEnter(A)).toBeDefined();
    expect(gate.tryEnter(B)).toBeUndefined();
  });
});
