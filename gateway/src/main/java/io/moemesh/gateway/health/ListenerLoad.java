package io.moemesh.gateway.health;

/**
 * How full the public HTTP listener is, read from the container when a self-probe ends: what tells a listener that
 * its clients keep busy from one that stopped working. A value the container does not tell is -1.
 *
 * @param busyWorkers    worker threads running a request now
 * @param maxWorkers     the most worker threads there may be (server.tomcat.threads.max)
 * @param connections    connections the listener holds now
 * @param maxConnections the most it accepts; past it new connections wait in the backlog, unanswered
 *                       (server.tomcat.max-connections)
 * @param completedTasks tasks the workers finished so far (requests, and the closing of idle connections): while it
 *                       moves, the listener works
 */
public record ListenerLoad(int busyWorkers, int maxWorkers, long connections, long maxConnections,
                           long completedTasks) {
    /** A listener that tells nothing of its load: never taken as saturated. */
    public static final ListenerLoad UNKNOWN = new ListenerLoad(-1, -1, -1, -1, -1);

    /** Every worker busy: a new request waits for one, and a probe may time out waiting. */
    public boolean workersAllBusy() {
        return maxWorkers > 0 && busyWorkers >= maxWorkers;
    }

    /** As many connections as the listener accepts: a new one waits in the backlog, and a probe may time out. */
    public boolean connectionsFull() {
        return maxConnections > 0 && connections >= maxConnections;
    }

    public boolean saturated() {
        return workersAllBusy() || connectionsFull();
    }

    /** What makes it saturated, for the health details. */
    public String describe() {
        return "workers " + busyWorkers + "/" + maxWorkers + " busy, connections " + connections + "/"
                + maxConnections;
    }
}
