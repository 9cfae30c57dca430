"""People who use the portal: applicants of an organisation and the producer's staff."""
