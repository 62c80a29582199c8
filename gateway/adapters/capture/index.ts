// The PacketSource port (ports.ts): knocks and NFLOG reports read from a tcpdump child's pcap stream.
export { LINKTYPE } from './pcap-frames.ts';
export type { CapturedPacket } from './pcap-frames.ts';
export { MAX_RECORD_BYTES, createPcapParser } from './pcap-stream.ts';
export type { CaptureSource } from './process.ts';
export { captureFilter, createNflogSource, createTcpdumpSource } from './tcpdump.ts';
