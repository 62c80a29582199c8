// The PacketSource port (ports.ts): knocks and NFLOG reports read from a tcpdump child's pcap
// stream; SPA datagrams from a UDP socket behind the kernel intake.
export { LINKTYPE } from './pcap-frames.ts';
export type { CapturedPacket } from './pcap-frames.ts';
export { MAX_RECORD_BYTES, createPcapParser } from './pcap-stream.ts';
export type { CaptureSource } from './process.ts';
export { createSpaSocket } from './spa-socket.ts';
export type { SpaDatagram, SpaSocket } from './spa-socket.ts';
export { captureFilter, createNflogSource, createTcpdumpSource } from './tcpdump.ts';
