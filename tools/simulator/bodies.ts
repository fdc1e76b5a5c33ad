/**
 * What each network would send for a simulated reading: the one place to add a way in
 * to the simulator and the cost model (`SIMULATED_SOURCES`). A format without a body
 * here works everywhere else; it is only not simulated or priced.
 */
import type { nextReading, SimulatedDevice } from './fleet.ts';

/** The HTTP ways in with a body below. */
export const SIMULATED_SOURCES = ['http', 'sigfox', 'ttn'] as const;
export type SimulatedSource = (typeof SIMULATED_SOURCES)[number];

/** What each network would POST for a reading: our JSON, a Sigfox callback, a The Things Stack uplink. */
export function httpBody(
  format: SimulatedSource,
  device: SimulatedDevice,
  reading: SimulatedReading,
): object {
  if (format === 'http') return { $id: device.id, ...reading };
  if (format === 'sigfox') {
    const frame = Buffer.alloc(3);
    frame.writeInt16BE(Math.round(reading.temp * 100));
    frame.writeUInt8(Math.min(255, Math.round(reading.battery / 0.02)), 2);
    return {
      device: sigfoxId(device),
      time: Math.floor(reading.$ts / 1000),
      data: frame.toString('hex'),
      seqNumber: reading.$seq % 4096,
      deviceTypeId: '5f0000000000000000000001',
      ack: false,
      station: '1F2E',
      rssi: reading.rssi.toFixed(2),
      snr: (10 + (reading.rssi % 7)).toFixed(2),
      duplicate: false,
      // As Sigfox sends them when its own custom payload config decodes the frame.
      'customData#temp': reading.temp.toFixed(2),
      'customData#battery': reading.battery.toFixed(2),
    };
  }
  return {
    end_device_ids: { device_id: device.id, application_ids: { application_id: 'simulator' } },
    received_at: new Date(reading.$ts).toISOString(),
    uplink_message: {
      f_port: 2,
      ...(reading.$seq === 0 ? {} : { f_cnt: reading.$seq }),
      decoded_payload: { temperature: reading.temp, battery: reading.battery },
      rx_metadata: [{ gateway_ids: { gateway_id: 'sim-gw' }, rssi: reading.rssi, snr: 7.5 }],
      received_at: new Date(reading.$ts).toISOString(),
    },
  };
}

/** A Sigfox-looking hex id for a simulated device. */
function sigfoxId(device: SimulatedDevice): string {
  const n = Number(device.id.replace(/\D/g, '')) || 0;
  return (0x1a0000 + n).toString(16).toUpperCase();
}

export type SimulatedReading = ReturnType<typeof nextReading>;
