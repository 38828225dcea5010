"""Live detection: ``minerwatch watch`` — sources that never end, one committed finding at a time.

sources    items (a record or a reject, and its acknowledgement), files and stdin; the AWS sources in ``sqs``
           (EventBridge events in SQS), ``s3poll`` (the S3 export layout) and ``gdapi`` (the GuardDuty API)
positions  where each source has got to, in tables of the state store
reorder    holding matched rows briefly so that out-of-order arrivals are applied in (eventdate, id) order
service    the loop over :class:`~minerwatch.alerting.detect.Detector`, shutdown, the delivery thread
metrics    counters and latencies; ``http`` serves them with ``/healthz``
"""
