package io.moemesh.service.grpc;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The open long-lived calls of one service (streams its clients keep open, waits), so that its stop can end them: a
 * graceful gRPC stop waits for every open call, and calls a client keeps open (a gateway's health watch, ExpertBatch
 * stream, WatchPlacement) would hold each stop for its whole grace. A call registers while open and unregisters when
 * it ends on its own; once the service stops, registering is refused (the caller ends that call itself) and
 * {@link #endAll} ends the open ones, outside this registry's lock: ending a call usually takes the call's own lock
 * and then unregisters it here, so holding this lock meanwhile could deadlock with a call ending on its own.
 *
 * @param <T> what a registered call is known by (the call itself, or what ends it); equal elements are one call
 */
public final class OpenStreams<T> {
    private static final Logger log = LoggerFactory.getLogger(OpenStreams.class);

    private final Set<T> open = new LinkedHashSet<>();
    private boolean stopping;

    /**
     * Registers an open call.
     *
     * @return false, registering nothing, once stopping ({@link #stopAccepting}, {@link #endAll}): the caller ends
     *     the call itself
     */
    public synchronized boolean register(T call) {
        if (stopping) {
            return false;
        }
        open.add(call);
        return true;
    }

    /** The call ended (on its own, or by {@link #endAll}); no effect when it is not registered. */
    public synchronized void unregister(T call) {
        open.remove(call);
    }

    /** Whether {@link #stopAccepting} or {@link #endAll} was called since the last {@link #resume}. */
    public synchronized boolean stopping() {
        return stopping;
    }

    /** The calls registered and not ended yet. */
    public synchronized int size() {
        return open.size();
    }

    /**
     * Refuses new calls from now on ({@link #register} returns false); the open ones stay until {@link #endAll}.
     * For a stop with steps between refusing and ending (the router answers its waits first).
     */
    public synchronized void stopAccepting() {
        stopping = true;
    }

    /**
     * Refuses new calls (as {@link #stopAccepting}) and hands each open call to {@code end}, once, outside this lock;
     * they are unregistered first, so a call ending on its own meanwhile is not ended twice by a second
     * {@code endAll}. One that throws does not leave the others open.
     */
    public void endAll(Consumer<? super T> end) {
        List<T> ending;
        synchronized (this) {
            stopping = true;
            ending = new ArrayList<>(open);
            open.clear();
        }
        for (T call : ending) {
            try {
                end.accept(call);
            } catch (RuntimeException e) {
                log.debug("ending an open call at stop", e);
            }
        }
    }

    /** Accepts calls again (a Spring context stopped and started again). */
    public synchronized void resume() {
        stopping = false;
    }
}
