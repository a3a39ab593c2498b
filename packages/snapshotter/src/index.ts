export { SnapshotService, infoOf, type Mount, type SnapshotInfo, type Usage } from './service.js';
export { compileFilters, type FilterFields } from './filters.js';
export { STATUS_OF, toServiceError } from './status.js';
export { serve, loadSnapshotsService, PROTO_DIR, SNAPSHOTS_PROTO, LOADER_OPTIONS, type ServerHandle } from './server.js';
export { startDaemon, runDaemon, type Daemon, type DaemonOptions } from './daemon.js';
