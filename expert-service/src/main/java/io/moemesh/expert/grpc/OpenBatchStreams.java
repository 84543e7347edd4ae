package io.moemesh.expert.grpc;

import io.grpc.Status;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * The open ExpertBatch streams of one service, so that its stop can end them ({@link #shutDownAll}). Every gateway
 * keeps one stream open on each expert-service, idle or not, and a graceful gRPC stop waits for every open call:
 * left open, they held each stop for the whole shutdown grace. Once stopping, a new stream is refused with the
 * shutdown status until the service starts again ({@link #reopen}).
 */
final class OpenBatchStreams {
    private final Status shutdownStatus;
    private final Set<BatchStream> open = new HashSet<>();
    private boolean stopping;

    /**
     * The stop's status is UNAVAILABLE, which the gateway's client treats like a lost instance: the calls it sent on
     * the stream and that were not answered fail with it, and its dispatcher sends them to another replica.
     */
    OpenBatchStreams(String instanceId) {
        this.shutdownStatus = Status.UNAVAILABLE.withDescription("expert-service " + instanceId + " shutting down");
    }

    /** The status a stream ends with at the service's stop. */
    Status shutdownStatus() {
        return shutdownStatus;
    }

    /** Registers and starts a new stream, or refuses it at once while the service stops. */
    void open(BatchStream stream) {
        boolean accepted;
        synchronized (this) {
            accepted = !stopping && open.add(stream);
        }
        if (accepted) {
            stream.start();
        } else {
            stream.refuse();
        }
    }

    /** A stream that ended (answered out, cancelled, or ended at stop). */
    synchronized void remove(BatchStream stream) {
        open.remove(stream);
    }

    synchronized int size() {
        return open.size();
    }

    /**
     * The service stops: each open stream answers the messages it took and then ends with {@link #shutdownStatus()}
     * (an idle one at once); later streams are refused. Does not wait for the answers.
     */
    void shutDownAll() {
        List<BatchStream> streams;
        synchronized (this) {
            stopping = true;
            streams = new ArrayList<>(open);
        }
        // Outside this lock: a stream ending takes its own lock, then this one (remove).
        streams.forEach(BatchStream::shutDown);
    }

    /** The service starts (again): streams are accepted. */
    synchronized void reopen() {
        stopping = false;
    }
}
