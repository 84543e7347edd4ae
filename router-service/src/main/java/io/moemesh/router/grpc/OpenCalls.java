package io.moemesh.router.grpc;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The router's calls that stay open (WatchPlacement and ReportRoutes streams, Replan's waits for watchers), each
 * registered with what ends it. A graceful gRPC stop waits for every open call, and gateways keep these open: the
 * router's stop first refuses new ones ({@link #stopTaking()}), then ends the open ones ({@link #endOpen()}), in
 * that order (ended first, a gateway reopens its watch about 200 ms later and holds the stop for the whole grace).
 */
final class OpenCalls {
    private static final Logger log = LoggerFactory.getLogger(OpenCalls.class);

    private final Set<Runnable> open = new LinkedHashSet<>();
    private boolean stopping;

    /**
     * Registers an open call and how to end it.
     *
     * @return false, registering nothing, once {@link #stopTaking()} was called: the caller ends the call itself
     */
    synchronized boolean add(Runnable end) {
        if (stopping) {
            return false;
        }
        open.add(end);
        return true;
    }

    /** The call ended on its own (its client closed or cancelled it). */
    synchronized void remove(Runnable end) {
        open.remove(end);
    }

    synchronized boolean stopping() {
        return stopping;
    }

    /** Refuses new calls from now on ({@link #add} returns false); the open ones stay until {@link #endOpen()}. */
    synchronized void stopTaking() {
        stopping = true;
    }

    /** Ends every open call. */
    void endOpen() {
        List<Runnable> ending;
        synchronized (this) {
            ending = new ArrayList<>(open);
            open.clear();
        }
        for (Runnable end : ending) {
            try {
                end.run();
            } catch (RuntimeException e) {
                log.debug("ending an open call", e);
            }
        }
    }

    /** Takes calls again (a Spring context stopped and started again). */
    synchronized void resume() {
        stopping = false;
    }
}
