"""Post-purchase feedback: CSAT/NPS answers, their tags, conversation transcripts, and the inbox queries."""
