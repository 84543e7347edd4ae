package io.moemesh.cli.chaos;

/**
 * One SIGKILL of the run and how the instance came back, in seconds since the run started; NaN for what did not
 * happen within the plan's recovery timeout.
 *
 * @param restartedAt the supervisor had started a new process
 * @param servingAt   the new process reported SERVING on gRPC health
 * @param trafficAt   the new process had computed its first ExpertBatch (it carries traffic again)
 */
public record Kill(String instance, long pid, double killedAt, double restartedAt, double servingAt, double trafficAt) {

    /** SERVING → first batch: how long the gateway took to use the instance again. */
    public double trafficAfterServing() {
        return trafficAt - servingAt;
    }

    public boolean recovered() {
        return !Double.isNaN(trafficAt);
    }
}
